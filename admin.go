package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/wxlogin/wxlogin/graph"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/config"
	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/server"
	"github.com/wxlogin/wxlogin/internal/wechat"
	"github.com/wxlogin/wxlogin/internal/wxapp"
)

const adminUsage = `usage: wxlogin admin <command> <user> [--reason TEXT]
  user <user>                   the user, identities, live sessions and recent audit events
  revoke <user>                 end every session of the user
  block <user> [--reason TEXT]  end the user's sessions; their logins answer FORBIDDEN until unblocked
  unblock <user>                let a blocked user log in again
  delete <user>                 delete the account, as deleteAccount does
<user> is a user id, an openid or a unionid. The settings are the server's (environment).`

// errUsage is a command line that is not one of adminUsage's.
var errUsage = errors.New("admin: see usage")

// runAdmin runs one operator's command against the database the environment names,
// printing JSON on stdout.
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprintln(stderr, adminUsage)
		return errUsage
	}
	command, ref := args[0], args[1]
	switch command {
	case "user", "revoke", "block", "unblock", "delete":
	default:
		fmt.Fprintln(stderr, adminUsage)
		return errUsage
	}
	flags := flag.NewFlagSet("wxlogin admin "+command, flag.ContinueOnError)
	flags.SetOutput(stderr)
	reason := flags.String("reason", "", "why (block only), kept with the user and in the audit trail")
	if err := flags.Parse(args[2:]); err != nil || flags.NArg() > 0 || (*reason != "" && command != "block") {
		fmt.Fprintln(stderr, adminUsage)
		return errUsage
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	// Warnings and errors only: stdout is the command's JSON, stderr stays quiet.
	log := slog.New(server.LogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	db, err := database.Open(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := adminService(cfg, db, log)
	if err != nil {
		return err
	}
	userID, err := svc.FindUser(ctx, ref)
	if errors.Is(err, auth.ErrNoUser) {
		return fmt.Errorf("no user with the id, openid or unionid %q", ref)
	}
	if err != nil {
		return err
	}
	var out any
	switch command {
	case "user":
		x, err := svc.ExportUser(ctx, userID, nil)
		if err != nil {
			return err
		}
		view, err := graph.Exported(x, nil) // no phone number: an operator's view needs none
		if err != nil {
			return err
		}
		view["user"].(map[string]any)["blockedReason"] = x.User.BlockedReason
		out = view
	case "revoke":
		n, err := svc.EndSessions(ctx, userID)
		if err != nil {
			return err
		}
		out = map[string]any{"user": userID.String(), "sessionsEnded": n}
	case "block":
		n, err := svc.Block(ctx, userID, *reason)
		if err != nil {
			return err
		}
		out = map[string]any{"user": userID.String(), "blocked": true, "reason": *reason, "sessionsEnded": n}
	case "unblock":
		if err := svc.Unblock(ctx, userID); err != nil {
			return err
		}
		out = map[string]any{"user": userID.String(), "blocked": false}
	case "delete":
		if err := svc.DeleteAccount(ctx, userID, auth.ByOperator); err != nil {
			return err
		}
		out = map[string]any{"user": userID.String(), "deleted": true}
	}
	return printJSON(stdout, out)
}

// loadConfig reads the configuration, with its problems one a line.
func loadConfig(getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return cfg, fmt.Errorf("the configuration has problems:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return cfg, nil
}

// printJSON writes a command's answer, indented for a person to read.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// adminService is the auth service on the server's database and key, with the
// configured mini-programs (never called: no command reaches WeChat).
func adminService(cfg config.Config, db *database.DB, log *slog.Logger) (*auth.Service, error) {
	keyring, err := seal.NewKeyring(cfg.SecretKey, cfg.OldSecretKeys...)
	if err != nil {
		return nil, err
	}
	apps := cfg.WeChat.Apps
	if len(apps) == 0 { // dev mode
		apps = []config.App{{AppID: "wxdevmode", Secret: "unused"}}
	}
	var platform []wxapp.App
	for _, a := range apps {
		wc, err := wechat.New(wechat.Config{BaseURL: cfg.WeChat.APIBase, AppID: a.AppID, Secret: a.Secret, Logger: log})
		if err != nil {
			return nil, err
		}
		platform = append(platform, wxapp.App{Client: wc})
	}
	return auth.New(auth.Options{DB: db, Apps: platform, Keyring: keyring, Logger: log,
		Policy: auth.Policy{SessionTTL: cfg.Sessions.TTL, IdleTimeout: cfg.Sessions.IdleTimeout, MaxSessions: cfg.Sessions.MaxSessions}})
}

// version is set at build time (-ldflags "-X main.version=v1.2.3"); otherwise the
// module's version, or the commit the binary was built from.
var version = ""

// versionLine is what `wxlogin --version` prints.
func versionLine() string {
	v, _ := buildVersion()
	goVersion := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = " " + info.GoVersion
	}
	return "wxlogin " + v + goVersion
}

// buildVersion is the version (with the commit it was built from, when known), as
// traces and --version give it.
func buildVersion() (string, bool) {
	v, commit := version, ""
	info, ok := debug.ReadBuildInfo()
	if ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					commit += "+modified"
				}
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if commit != "" {
		v += " (" + commit + ")"
	}
	return v, ok
}
