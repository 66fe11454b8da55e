package api

// SetAdmittedHookForTest makes fn run in every webhook request once it has its slot, before it
// reads the body: a test blocks in it to keep slots taken.
func (s *Server) SetAdmittedHookForTest(fn func()) { s.admitted = fn }

// LiveStreamsForTest is how many event streams are open.
func (s *Server) LiveStreamsForTest() int {
	h := s.live()
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
