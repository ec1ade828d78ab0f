package testpeer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// PHPFPM is the Debian PHP-FPM binary.
const PHPFPM = "php-fpm8.2"

// StartPHPFPM runs PHP-FPM in the foreground for the test, with a generated configuration in a temp dir
// (its own pid file, the master's error log on its captured stderr): one static pool
// of two workers listening on a fresh unix socket, clear_env, catch_workers_output. It returns the socket
// path once PHP-FPM accepts connections, and skips the test when php-fpm8.2 is absent (see Need).
//
// docroot is not referenced by the configuration (the gateway sends SCRIPT_FILENAME); it is checked to
// exist so a wrong path fails here rather than as a 404 later.
//
// The pool is deliberately permissive so tests prove the gateway's own protections: it sets
// security.limit_extensions empty (PHP-FPM then runs a file of any extension) and leaves cgi.fix_pathinfo
// at its default 1 (PHP walks back from a missing SCRIPT_FILENAME to an existing prefix, the behaviour
// behind the /uploads/evil.jpg/x.php class of attacks). PHP errors go to the FastCGI STDERR stream (no
// error_log is set for the pool), as the gateway sees them in production. Never use this configuration
// outside tests.
func StartPHPFPM(t testing.TB, docroot string) (socketPath string) {
	t.Helper()
	bin := Need(t, "apt-get install php-fpm", PHPFPM)[0]
	if fi, err := os.Stat(docroot); err != nil || !fi.IsDir() {
		t.Fatalf("php-fpm docroot %s: not a directory (%v)", docroot, err)
	}
	dir := t.TempDir()
	sock := SocketPath(t, "fpm.sock")
	user := ""
	if os.Geteuid() == 0 {
		user = "user = root\ngroup = root\n" // allowed by -R; a pool run by root must name its user
	}
	conf := fmt.Sprintf(`[global]
pid = %[1]s/php-fpm.pid
error_log = /proc/self/fd/2
log_level = notice
daemonize = no

[test]
%[3]slisten = %[2]s
listen.mode = 0600
pm = static
pm.max_children = 2
clear_env = yes
catch_workers_output = yes
decorate_workers_output = no
security.limit_extensions =
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
php_admin_value[upload_tmp_dir] = %[1]s
php_admin_value[sys_temp_dir] = %[1]s
`, dir, sock, user)
	path := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := Start(t, dir, nil, bin, "-F", "-R", "-y", path)
	WaitDial(t, p, "unix", sock, PeerStartTimeout)
	return sock
}
