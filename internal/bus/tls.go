package bus

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TLS names PEM files for the NATS listener or a client of it. On the
// listener, Cert and Key are the server's and CA, if set, verifies client
// certificates (and then every client must present one). On a client, CA
// verifies the listener's certificate and Cert with Key is the client's
// own, for a listener that asks for one.
type TLS struct {
	Cert, Key, CA string
}

func (t TLS) enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// serverTLS turns TLS on for the listener.
func serverTLS(sopts *server.Options, t TLS) error {
	if t.Cert == "" || t.Key == "" {
		return errors.New("nats tls: the listener needs both a certificate and a key")
	}
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA, Verify: t.CA != ""})
	if err != nil {
		return fmt.Errorf("nats tls: %w", err)
	}
	sopts.TLSConfig, sopts.TLS, sopts.TLSVerify = cfg, true, t.CA != ""
	sopts.TLSTimeout = 5
	return nil
}

// clientTLS are the connect options for t.
func clientTLS(t TLS) []nats.Option {
	var opts []nats.Option
	if t.CA != "" {
		opts = append(opts, nats.RootCAs(t.CA))
	}
	if t.Cert != "" && t.Key != "" {
		opts = append(opts, nats.ClientCert(t.Cert, t.Key))
	}
	return opts
}
