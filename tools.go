//go:build tools

// Package main's tools.go pins the code generators' versions in go.mod; `make generate`
// runs them from here.
package main

import (
	_ "entgo.io/ent/cmd/ent"
	_ "github.com/99designs/gqlgen"
	_ "github.com/Khan/genqlient"
)
