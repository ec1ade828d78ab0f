<?php
// public/index.php of a small PHP site written the way frameworks generate them (Laravel, Symfony, Slim):
// the web server serves files that exist (CSS, JavaScript, images, uploads) and sends every other path
// here; the app routes on REQUEST_URI below its base URL, the directory SCRIPT_NAME lives in. Nothing in
// it knows about Switchyard.
$base = rtrim(dirname($_SERVER['SCRIPT_NAME']), '/');
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$route = substr($path, strlen($base));
if ($route === '' || $route === false) {
    $route = '/';
}
header('X-Front-Controller: index.php');

function page(string $base, string $title, string $body): void
{
    header('Content-Type: text/html; charset=utf-8');
    $b = htmlspecialchars($base);
    echo "<!doctype html>\n<html><head><title>" . htmlspecialchars($title) . "</title>\n";
    echo "<link rel=\"stylesheet\" href=\"$b/css/app.css\">\n";
    echo "<script src=\"$b/js/app.js\" defer></script></head>\n";
    echo "<body><img src=\"$b/img/logo.png\" alt=\"logo\">\n$body\n</body></html>\n";
}

if ($route === '/' && $_SERVER['REQUEST_METHOD'] === 'GET') {
    $b = htmlspecialchars($base);
    page($base, 'Home', "<h1>Home</h1>\n<form method=\"post\" action=\"$b/upload\" enctype=\"multipart/form-data\">"
        . "<input type=\"file\" name=\"file\"><button>Upload</button></form>");
} elseif ($route === '/upload' && $_SERVER['REQUEST_METHOD'] === 'POST') {
    // Stores the file under its own name, as careless apps do: the server must never run it.
    $f = $_FILES['file'] ?? null;
    if ($f === null || $f['error'] !== UPLOAD_ERR_OK) {
        http_response_code(400);
        echo "no file\n";
        return;
    }
    $name = basename($f['name']);
    move_uploaded_file($f['tmp_name'], __DIR__ . '/uploads/' . $name);
    header('Location: ' . $base . '/uploads/' . rawurlencode($name), true, 303);
} elseif (preg_match('#^/articles/([0-9]+)$#', $route, $m)) {
    page($base, 'Article', '<h1>Article ' . $m[1] . '</h1>');
} else {
    http_response_code(404);
    page($base, 'Not found', '<h1>Not found</h1><p>' . htmlspecialchars($route) . '</p>');
}
