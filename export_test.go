package pool

// Hooks for the external tests of this package.

// SetHandoffHookForTest makes l's serve goroutine call f right after it
// hands an established session to Accept, before it returns: the window in
// which a listener once closed the session's socket on Close.
func SetHandoffHookForTest(l *Listener, f func()) { l.handoffHook = f }

// ListenerClosingForTest is closed once l.Close has begun.
func ListenerClosingForTest(l *Listener) <-chan struct{} { return l.ctx.Done() }
