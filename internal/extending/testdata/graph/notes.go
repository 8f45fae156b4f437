package graph

import (
	"github.com/wxlogin/wxlogin/ent"
	"github.com/wxlogin/wxlogin/graph/model"
)

// noteOf is a stored note as the API shows it.
func noteOf(n *ent.Note) *model.Note {
	return &model.Note{ID: n.ID.String(), Text: n.Text, CreatedAt: n.CreatedAt}
}
