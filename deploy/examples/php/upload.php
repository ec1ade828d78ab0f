<?php
// Upload check of the Switchyard PHP example: POST a multipart field "file"; the answer is JSON with the
// file's sha256 and size as PHP received it. Limits come from .user.ini beside this script (32 MiB).
header('Content-Type: application/json');
header('Cache-Control: no-store');

$errors = [
    UPLOAD_ERR_INI_SIZE => 'larger than upload_max_filesize',
    UPLOAD_ERR_FORM_SIZE => 'larger than MAX_FILE_SIZE',
    UPLOAD_ERR_PARTIAL => 'partially uploaded',
    UPLOAD_ERR_NO_FILE => 'no file',
    UPLOAD_ERR_NO_TMP_DIR => 'no temporary directory',
    UPLOAD_ERR_CANT_WRITE => 'cannot write to disk',
    UPLOAD_ERR_EXTENSION => 'stopped by an extension',
];

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(405);
    header('Allow: POST');
    echo json_encode(['error' => 'POST a multipart field "file"']), "\n";
    exit;
}
$f = $_FILES['file'] ?? null;
if ($f === null || is_array($f['error'])) {
    // Also reached when the body exceeded post_max_size: PHP then drops every field.
    http_response_code(400);
    echo json_encode(['error' => 'no single multipart field "file"',
                      'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null]), "\n";
    exit;
}
if ($f['error'] !== UPLOAD_ERR_OK) {
    http_response_code($f['error'] === UPLOAD_ERR_INI_SIZE ? 413 : 400);
    echo json_encode(['error' => $errors[$f['error']] ?? 'upload error ' . $f['error']]), "\n";
    exit;
}
echo json_encode([
    'app' => 'php',
    'name' => $f['name'],
    'size' => filesize($f['tmp_name']),
    'sha256' => hash_file('sha256', $f['tmp_name']),
], JSON_UNESCAPED_SLASHES), "\n";
