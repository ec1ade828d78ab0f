<?php
// Front controller of the test docroot: reports how the gateway split the request.
header('Content-Type: application/json');
header('X-Script: ' . basename(__FILE__));
echo json_encode([
    'script_name' => $_SERVER['SCRIPT_NAME'] ?? null,
    'path_info' => $_SERVER['PATH_INFO'] ?? null,
    'request_uri' => $_SERVER['REQUEST_URI'] ?? null,
    'script_filename' => $_SERVER['SCRIPT_FILENAME'] ?? null,
    'query_string' => $_SERVER['QUERY_STRING'] ?? null,
    'php_self' => $_SERVER['PHP_SELF'] ?? null,
    'method' => $_SERVER['REQUEST_METHOD'] ?? null,
    'https' => $_SERVER['HTTPS'] ?? null,
    'app_env' => $_SERVER['APP_ENV'] ?? null,
    'http_proxy' => $_SERVER['HTTP_PROXY'] ?? null,
    'file' => __FILE__,
    'pid' => getmypid(),
]);
