package persisted

import (
	_ "embed"
)

//go:generate go run ./manifestgen -schema ../../graph -documents ../../clients/documents -out manifest.json

// builtinManifest is generated from clients/documents by `make generate`.
//
//go:embed manifest.json
var builtinManifest []byte

// Builtin is the manifest of the client documents in the repository.
func Builtin() *Manifest {
	m, err := ParseManifest(builtinManifest)
	if err != nil {
		panic("persisted: the embedded manifest is broken; run make generate: " + err.Error())
	}
	return m
}
