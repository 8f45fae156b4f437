// Package graph is wxlogin's GraphQL API: the schema (schema.graphqls, the source of
// truth), thin resolvers that check input, call a service and map the result, and the
// one error presenter that gives every error its contract code.
package graph

//go:generate go run github.com/99designs/gqlgen generate

import (
	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/internal/auth"
	"github.com/wxlogin/wxlogin/internal/metrics"
	"github.com/wxlogin/wxlogin/internal/opendata"
	"github.com/wxlogin/wxlogin/internal/phone"
	"github.com/wxlogin/wxlogin/internal/profile"
)

// Resolver holds the resolvers' dependencies, and nothing else.
type Resolver struct {
	Auth     *auth.Service
	Profile  *profile.Service
	Phone    *phone.Service
	OpenData *opendata.Service
	Metrics  *metrics.Metrics
	// Ent is the database, for the resolvers of types a team adds to the schema
	// (docs/extending.md); wxlogin's own go through the services above.
	Ent *ent.Client
}
