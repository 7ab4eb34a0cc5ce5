package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReaderAccount holds the reader user. It is an account of its own, not a
// user with permissions in the healer's account, because permissions
// cannot hold the line there: a JetStream consumer's name is one subject
// token, so no subject rule can tell the reader's consumers from the
// notifier's durables (create-or-update would let it rewrite or delete
// them), and every reply inbox of the healer's account (notify route URLs
// with tokens among them) is visible to whoever may subscribe _INBOX.>.
//
// The design, the simplest that holds:
//   - the healer's account ($G, so stores from older versions are found
//     again) exports the live events (hmd.>) to this account only;
//   - this account has JetStream of its own, bounded to ReaderMaxConsumers
//     consumers, and one stream, HMD_EVENTS, a mirror of the healer's. The
//     mirror reaches the source through a service import of exactly the
//     consumer create/delete API of HMD_EVENTS, under a prefix the reader
//     user may not publish to. Readers use their usual code (the same
//     stream name) and everything they create lives here;
//   - the reader user may only read: JetStream info, the mirror, and
//     consumers on it; it publishes nowhere else, and sees no inbox but
//     those of its own account.
//
// The cost is a second copy of the events on disk, only when a reader user
// is configured, with the same age bound.
const ReaderAccount = "HMD_READER"

// ReaderMaxConsumers bounds the consumers readers may hold at once.
const ReaderMaxConsumers = 32

const (
	readerSourceAPI = "_HMD_SRC.API"
	readerDeliver   = "_HMD_READER_DELIVER"
)

// configureReader adds the reader account and the users of a listener
// with a reader: the healer's user in $G, the reader in its own account,
// and an in-process-only admin of that account that keeps the mirror. It
// returns the admin's password. linkReader finishes the set-up once the
// server runs.
func configureReader(sopts *server.Options, o Options) (string, error) {
	racc := server.NewAccount(ReaderAccount)
	sopts.Accounts = append(sopts.Accounts, racc)
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("reader account: %w", err)
	}
	adminPass := hex.EncodeToString(buf)
	sopts.Users = []*server.User{
		{Username: o.User, Password: o.Password},
		{Username: o.ReaderUser, Password: o.ReaderPassword, Account: racc, Permissions: ReaderPermissions()},
		{Username: readerAdmin, Password: adminPass, Account: racc,
			AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}}},
	}
	return adminPass, nil
}

// linkReader enables JetStream in both accounts and wires the exports of
// $G to the reader account. $G's JetStream is enabled here because, with a
// second account, the server only enables it where a configuration says
// so, and $G cannot be named in one.
func linkReader(srv *server.Server) error {
	gacc := srv.GlobalAccount()
	racc, err := srv.LookupAccount(ReaderAccount)
	if err != nil {
		return fmt.Errorf("reader account: %w", err)
	}
	if !gacc.JetStreamEnabled() {
		if err := gacc.EnableJetStream(nil, nil); err != nil {
			return fmt.Errorf("enable jetstream: %w", err)
		}
	}
	s := EventsStream
	only := []*server.Account{racc}
	for _, st := range []string{"hmd.>", readerDeliver + ".>"} {
		if err := gacc.AddStreamExport(st, only); err != nil {
			return fmt.Errorf("reader account: export %s: %w", st, err)
		}
		if err := racc.AddStreamImport(gacc, st, ""); err != nil {
			return fmt.Errorf("reader account: import %s: %w", st, err)
		}
	}
	for _, api := range []string{"CONSUMER.CREATE." + s, "CONSUMER.CREATE." + s + ".>", "CONSUMER.DELETE." + s + ".*"} {
		if err := gacc.AddServiceExport("$JS.API."+api, only); err != nil {
			return fmt.Errorf("reader account: export %s: %w", api, err)
		}
		if err := racc.AddServiceImport(gacc, readerSourceAPI+"."+api, "$JS.API."+api); err != nil {
			return fmt.Errorf("reader account: import %s: %w", api, err)
		}
	}
	fc := "$JS.FC." + s + ".>"
	if err := gacc.AddServiceExport(fc, only); err != nil {
		return fmt.Errorf("reader account: export %s: %w", fc, err)
	}
	if err := racc.AddServiceImport(gacc, fc, fc); err != nil {
		return fmt.Errorf("reader account: import %s: %w", fc, err)
	}
	limits := server.JetStreamAccountLimits{MaxMemory: -1, MaxStore: -1, MaxStreams: 1, MaxConsumers: ReaderMaxConsumers, MaxAckPending: -1,
		MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1}
	if err := racc.EnableJetStream(map[string]server.JetStreamAccountLimits{"": limits}, nil); err != nil {
		return fmt.Errorf("reader account: enable jetstream: %w", err)
	}
	return nil
}

const readerAdmin = "hmd-reader-admin"

// ensureReaderMirror creates or updates the reader account's mirror of the
// events stream, through an in-process connection of that account.
func ensureReaderMirror(ctx context.Context, srv *server.Server, adminPass string, retention time.Duration) error {
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("healer-reader-admin"), nats.UserInfo(readerAdmin, adminPass))
	if err != nil {
		return fmt.Errorf("reader account: connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("reader account: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "HealMyDocker events, mirrored for readers",
		Storage:     jetstream.FileStorage,
		MaxAge:      retention,
		Mirror: &jetstream.StreamSource{Name: EventsStream, External: &jetstream.ExternalStream{
			APIPrefix: readerSourceAPI, DeliverPrefix: readerDeliver,
		}},
	})
	if err != nil {
		return fmt.Errorf("reader account: mirror %s: %w", EventsStream, err)
	}
	return nil
}

// ReaderPermissions are the reader user's rights inside its own account:
// read JetStream's and the mirror's state, make, read and drop consumers
// on the mirror, subscribe to live events and its own inboxes. It cannot
// publish an event, change or purge the mirror, or make a stream.
func ReaderPermissions() *server.Permissions {
	s := EventsStream
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
			"$JS.API.STREAM.INFO." + s,
			"$JS.API.STREAM.MSG.GET." + s,
			"$JS.API.DIRECT.GET." + s, "$JS.API.DIRECT.GET." + s + ".>",
			"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.CREATE." + s + ".>",
			"$JS.API.CONSUMER.DURABLE.CREATE." + s + ".*",
			"$JS.API.CONSUMER.INFO." + s + ".*",
			"$JS.API.CONSUMER.DELETE." + s + ".*",
			"$JS.API.CONSUMER.MSG.NEXT." + s + ".*",
			"$JS.API.CONSUMER.NAMES." + s, "$JS.API.CONSUMER.LIST." + s,
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{"hmd.>", "_INBOX.>"}},
	}
}
