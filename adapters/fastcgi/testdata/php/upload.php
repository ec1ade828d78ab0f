<?php
// Returns the sha256 of the raw body, or of the uploaded multipart file "file", with the lengths PHP saw.
header('Content-Type: application/json');
if (isset($_FILES['file'])) {
    $f = $_FILES['file'];
    echo json_encode([
        'error' => $f['error'],
        'size' => $f['size'],
        'sha256' => $f['error'] === UPLOAD_ERR_OK ? hash_file('sha256', $f['tmp_name']) : null,
        'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null,
    ]);
    exit;
}
$body = file_get_contents('php://input');
echo json_encode([
    'size' => strlen($body),
    'sha256' => hash('sha256', $body),
    'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null,
]);
