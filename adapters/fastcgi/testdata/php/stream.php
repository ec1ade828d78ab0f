<?php
// Sends several events, flushing each, and waits between them until the test creates the flag file named
// by ?id= in this directory (at most 10 s each): the next event is produced only once the previous one
// reached the client.
header('Content-Type: text/event-stream');
header('Cache-Control: no-cache');
while (ob_get_level() > 0) {
    ob_end_flush();
}
$id = preg_replace('/[^a-z0-9]/', '', $_GET['id'] ?? 'x');
for ($i = 1; $i <= 3; $i++) {
    echo "data: chunk $i\n\n";
    flush();
    if ($i < 3) {
        $flag = __DIR__ . "/flag-$id-$i";
        for ($w = 0; $w < 1000 && !file_exists($flag); $w++) {
            usleep(10000);
        }
    }
}
