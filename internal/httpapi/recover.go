package httpapi

import (
	"net/http"

	"github.com/healmydocker/healmydocker/internal/safe"
)

// recovering answers 500 to a request whose handler panicked, reports it
// with the request line, and keeps serving.
func (s *Server) recovering(h http.Handler) http.Handler {
	g := s.o.Guard
	if g == nil {
		g = &safe.Guard{Log: s.o.Log}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := g.Call("http handler", func() string { return r.Method + " " + r.URL.Path }, func() { h.ServeHTTP(w, r) })
		if err != nil {
			// Headers may be out already; then this only ends the body.
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	})
}
