package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/healmydocker/healmydocker/internal/config"
	"github.com/healmydocker/healmydocker/internal/httpapi"
)

// Control is `healer pause` and `healer resume`: it asks the running healer
// through its HTTP endpoint, with HMD_HTTP_TOKEN, and prints one line per
// container. Exit codes: 0 all done, 1 any failed, 2 usage.
func Control(ctx context.Context, action string, args, environ []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("healer "+action, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var req httpapi.ControlRequest
	url := fs.String("url", "", "the healer's HTTP endpoint (default: from HMD_HTTP_ADDRESS, HMD_HTTP_PORT and HMD_HTTP_PREFIX)")
	fs.BoolVar(&req.All, "all", false, "every selected container (resume: every paused one)")
	if action == "pause" {
		fs.StringVar(&req.For, "for", "", "how long the pause lasts, such as 30m (default: until healer resume)")
		fs.StringVar(&req.Reason, "reason", "", "why, for the history and the status page")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "healer %s NAME... [flags], or --all: run next to the healer (docker exec healer /healer %s web)\n", action, action)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		// pflag says nothing itself when it continues on an error.
		fmt.Fprintf(stderr, "healer %s: %v\n", action, err)
		fs.Usage()
		return 2
	}
	req.Names = fs.Args()
	cfg, err := config.Load(nil, environ, io.Discard, func(string) {})
	if err != nil {
		fmt.Fprintf(stderr, "healer %s: %v\n", action, err)
		return 2
	}
	base := *url
	if base == "" {
		if cfg.HTTPPort == 0 {
			fmt.Fprintf(stderr, "healer %s: the healer's HTTP endpoint is off (http_port=0); give --url\n", action)
			return 2
		}
		base = httpapi.URL(cfg.HTTPAddress, cfg.HTTPPort, cfg.HTTPPrefix)
	}
	res, err := control(ctx, strings.TrimRight(base, "/")+"/control/"+action, cfg.HTTPToken.Reveal(), req)
	if err != nil {
		fmt.Fprintf(stderr, "healer %s: %v\n", action, err)
		return 1
	}
	code := 0
	for _, r := range res {
		name := Printable(r.Name)
		switch {
		case r.Error != "":
			fmt.Fprintf(stdout, "%s: %s\n", name, Printable(r.Error))
			code = 1
		case action == "resume":
			fmt.Fprintf(stdout, "%s: resumed\n", name)
		case r.Until != nil:
			fmt.Fprintf(stdout, "%s: paused until %s\n", name, r.Until.Local().Format(time.DateTime))
		default:
			fmt.Fprintf(stdout, "%s: paused until healer resume\n", name)
		}
	}
	if len(res) == 0 {
		fmt.Fprintln(stdout, "no container")
	}
	return code
}

func control(ctx context.Context, endpoint, token string, req httpapi.ControlRequest) ([]httpapi.ControlResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	// The URL is shown with its password masked; one that does not parse
	// is not shown, nor its bad escape: either may hold the password.
	u, err := neturl.Parse(endpoint)
	if err != nil {
		var ue *neturl.Error
		var esc neturl.EscapeError
		if errors.As(err, &ue) && !errors.As(err, &esc) {
			return nil, fmt.Errorf("ask the healer: its URL is not valid: %w", ue.Err)
		}
		return nil, errors.New("ask the healer: its URL is not valid")
	}
	url := u.Redacted()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("ask the healer at %s: %w", url, err)
	}
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return nil, fmt.Errorf("ask the healer at %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the healer at %s answered %s: %s", url, resp.Status, Printable(strings.TrimSpace(string(b))))
	}
	var res []httpapi.ControlResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("the healer's answer: %w", err)
	}
	return res, nil
}

// Printable strips control characters, so text from a container or a
// person cannot drive the terminal.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}
