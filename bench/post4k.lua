-- wrk script for the bench's POST scenario: every request POSTs a 4 KiB body (4096 bytes) to the path of
-- the URL given to wrk (bench/run.sh points it at the backend's /echo-size, which answers the length).
wrk.method = "POST"
wrk.body = string.rep("p", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
