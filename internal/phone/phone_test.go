package phone

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/wxlogin/wxlogin/internal/database"
	"github.com/wxlogin/wxlogin/internal/seal"
	"github.com/wxlogin/wxlogin/internal/testdb"
)

func TestE164(t *testing.T) {
	for _, c := range []struct {
		number, countryCode, want string
	}{
		{"13800000000", "86", "+8613800000000"}, // WeChat's mainland form
		{"13800000000", "", "+8613800000000"},   // bare without a country code: mainland's
		{"+85261234567", "852", "+85261234567"}, // WeChat's form elsewhere
		{"+8613800000000", "86", "+8613800000000"},
		{"+8613800000000", "", "+8613800000000"}, // already E.164 (what the fake used to send)
		{"61234567", "852", "+85261234567"},      // bare, with its country code
		{"", "86", ""},
		{"+", "", ""},
		{"138 0000 0000", "86", ""},
		{"13800000000", "086", ""},
		{"13800000000", "8600", ""},
		{"+0613800000000", "", ""},
		{"+1234567890123456", "", ""}, // 16 digits
		{"1234", "86", ""},            // 6 digits with the country code: too short
	} {
		got, ok := e164(c.number, c.countryCode)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("e164(%q, %q) = %q, %v; want %q", c.number, c.countryCode, got, ok, c.want)
		}
	}
}

// TestMigrateNumbers: rows written in the forms earlier versions stored (WeChat's bare
// mainland form, and E.164 as the fake sent it) all end in E.164, once, however many
// instances migrate at once; running it again changes nothing; a number sealed under a
// key no longer held is left alone.
func TestMigrateNumbers(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		ring := keyring(t, 7)
		stored := map[string]string{ // as stored → as it must end
			"13800000000":    "+8613800000000",
			"13900000001":    "+8613900000001",
			"13700000002":    "+8613700000002",
			"+8613600000003": "+8613600000003",
			"+85261234567":   "+85261234567",
		}
		ids := map[uuid.UUID]string{}
		for old, want := range stored {
			id := newUser(t, db)
			db.User.UpdateOneID(id).SetPhoneNumber(ring.Seal([]byte(old), Binding(id))).ExecX(ctx)
			ids[id] = want
		}
		newUser(t, db) // no number
		lost := newUser(t, db)
		lostSealed := keyring(t, 9).Seal([]byte("13800000009"), Binding(lost))
		db.User.UpdateOneID(lost).SetPhoneNumber(lostSealed).ExecX(ctx)

		// Two instances, reading two users a query so that both go through several pages.
		var instances []*Service
		for range 2 {
			s := New(Options{DB: db, Keyring: ring})
			s.batch = 2
			instances = append(instances, s)
		}
		counts := make([]int, len(instances))
		var wg sync.WaitGroup
		for i, s := range instances {
			wg.Go(func() {
				n, err := s.MigrateNumbers(ctx)
				if err != nil {
					t.Errorf("instance %d: %v", i, err)
				}
				counts[i] = n
			})
		}
		wg.Wait()
		if counts[0]+counts[1] != 3 {
			t.Errorf("rewritten %v, want 3 rows in all: the bare ones, each once", counts)
		}
		for id, want := range ids {
			u := db.User.GetX(ctx, id)
			plain, err := ring.Open(*u.PhoneNumber, Binding(id))
			if err != nil || string(plain) != want {
				t.Errorf("stored %q, %v; want %q", plain, err, want)
			}
			if got, err := instances[0].NumberOf(ctx, id); err != nil || got == nil || *got != want {
				t.Errorf("NumberOf = %v, %v; want %q", got, err, want)
			}
		}
		if u := db.User.GetX(ctx, lost); !bytes.Equal(*u.PhoneNumber, lostSealed) {
			t.Error("a number sealed under another key was rewritten")
		}
		if n, err := instances[1].MigrateNumbers(ctx); err != nil || n != 0 {
			t.Errorf("a second run rewrote %d, %v; want 0", n, err)
		}
	})
}

// TestMigrationLeavesANumberBoundSince: the rewrite of a row read before a new number
// was bound leaves the new number.
func TestMigrationLeavesANumberBoundSince(t *testing.T) {
	testdb.Run(t, func(t *testing.T, b testdb.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		ring := keyring(t, 7)
		s := New(Options{DB: db, Keyring: ring})
		id := newUser(t, db)
		read := ring.Seal([]byte("13800000000"), Binding(id))
		db.User.UpdateOneID(id).SetPhoneNumber(read).ExecX(ctx)
		bound := ring.Seal([]byte("+8613900000000"), Binding(id))
		db.User.UpdateOneID(id).SetPhoneNumber(bound).ExecX(ctx) // bound after the read

		if n, err := s.rewrite(ctx, id, read); err != nil || n != 0 {
			t.Fatalf("rewrite of a stale read = %d, %v; want 0", n, err)
		}
		if got, _ := s.NumberOf(ctx, id); got == nil || *got != "+8613900000000" {
			t.Errorf("number = %v, want the one bound since", got)
		}
	})
}

func keyring(t *testing.T, b byte) *seal.Keyring {
	t.Helper()
	ring, err := seal.NewKeyring(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func newUser(t *testing.T, db *database.DB) uuid.UUID {
	t.Helper()
	return db.User.Create().SaveX(context.Background()).ID
}
