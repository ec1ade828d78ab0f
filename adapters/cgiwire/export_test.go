package cgiwire

// HoldBodyCopyUntilStopped makes every body copy wait, before its first read, until its handler has told
// it to stop (so it reads nothing), until the returned function undoes it. Not for parallel tests.
func HoldBodyCopyUntilStopped() (undo func()) {
	stopped := make(chan struct{}, 1)
	testHookBodyCopy = func() { <-stopped }
	testHookBodyStopped = func() { stopped <- struct{}{} }
	return func() { testHookBodyCopy, testHookBodyStopped = nil, nil }
}
