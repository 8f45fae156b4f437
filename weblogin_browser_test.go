package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/internal/wechat/fakewechat"
)

// TestWebLoginInBrowser serves in dev mode and has headless Chromium log in on the web
// login demo page (internal/weblogindemo/browser-test.mjs): cancelled from its dev
// panel; confirmed from the panel with the subscription's stream refused, so that the
// page polls; and confirmed by a simulated phone running the mini-program SDK, over the
// stream. Each time the page shows the right user's openid, and it loads nothing from
// another host.
func TestWebLoginInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	node, chromium := browserTools(t)
	script, err := filepath.Abs("internal/weblogindemo/browser-test.mjs")
	if err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs("test-artifacts/weblogin.png")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(shot)
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}

	s := start(t, map[string]string{"WXLOGIN_DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "wxlogin.db")})

	// A guard against a hung browser, not a timing assertion: the script's own waits are
	// a minute each.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const appid = "wxdevfake0000001" // dev mode's fake mini-program
	cmd := exec.CommandContext(ctx, node, script, s.base,
		fakewechat.OpenIDFor(appid, "alice"), fakewechat.OpenIDFor(appid, "bob"), shot)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) } // lets Playwright close Chromium
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("the browser test failed (%v); the page as it was: %s", err, shot)
	}
}
