<?php
// Front controller of the Switchyard PHP example: every path without its own script lands here (the
// gateway's FastCGI adapter routes /php/anything to index.php with PATH_INFO=/anything when configured as a
// front controller). It answers with the CGI variables PHP-FPM received, so tests can check the split of
// SCRIPT_NAME and PATH_INFO, the scheme and the client address the gateway passed.
header('Content-Type: application/json');
header('Cache-Control: no-store');

$keys = [
    'SCRIPT_NAME', 'PATH_INFO', 'REQUEST_URI', 'PHP_SELF', 'HTTPS', 'REMOTE_ADDR', 'SERVER_NAME',
    'SERVER_PORT', 'REQUEST_METHOD', 'QUERY_STRING', 'SCRIPT_FILENAME', 'DOCUMENT_ROOT', 'REQUEST_SCHEME',
    'HTTP_HOST', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'HTTP_X_FORWARDED_FOR', 'HTTP_X_FORWARDED_PROTO',
    'HTTP_X_FORWARDED_HOST', 'HTTP_X_FORWARDED_PREFIX', 'HTTP_PROXY',
];
$out = ['app' => 'php'];
foreach ($keys as $k) {
    $out[$k] = $_SERVER[$k] ?? null;
}
$body = file_get_contents('php://input');
$out['body_length'] = strlen($body);
$out['body_sha256'] = hash('sha256', $body);
$out['get'] = (object) $_GET; // {} rather than [] when empty
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_PRETTY_PRINT), "\n";
