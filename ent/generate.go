// Package ent holds the data model's generated code. The hand-written schema is in
// ent/schema; everything else here is produced by `make generate` and never edited.
package ent

//go:generate go run entgo.io/ent/cmd/ent generate --feature sql/upsert,sql/lock,sql/execquery,sql/versioned-migration ./schema
