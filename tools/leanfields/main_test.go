package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wxlogin/wxlogin/graph/model"
)

// The rewrite is safe only because these never answer null where it calls them
// (the Time scalar is graph/model's; the others gqlgen's).
func TestSafeMarshallersDoNotAnswerNull(t *testing.T) {
	for name, m := range map[string]graphql.Marshaler{
		"MarshalString(\"\")":   graphql.MarshalString(""),
		"MarshalID(\"\")":       graphql.MarshalID(""),
		"MarshalBoolean(false)": graphql.MarshalBoolean(false),
		"MarshalInt(0)":         graphql.MarshalInt(0),
		"MarshalTime(epoch)":    model.MarshalTime(time.Unix(0, 0).UTC()),
	} {
		if m == graphql.Null {
			t.Errorf("%s is null: a field using it must not be rewritten", name)
		}
	}
	if model.MarshalTime(time.Time{}) != graphql.Null {
		t.Error("MarshalTime(zero) is no longer null: the guard in safeMarshallers is stale")
	}
}

const fixture = `package graph

func (ec *executionContext) _User_openid(ctx context.Context, field graphql.CollectedField, obj *model.User) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_User_openid(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.Openid, nil
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v string) graphql.Marshaler {
			return ec.marshalNString2string(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) _User_createdAt(ctx context.Context, field graphql.CollectedField, obj *model.User) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_User_createdAt(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.CreatedAt, nil
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v time.Time) graphql.Marshaler {
			return ec.marshalNTime2timeᚐTime(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) _User_phoneNumber(ctx context.Context, field graphql.CollectedField, obj *model.User) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_User_phoneNumber(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.PhoneNumber(ctx)
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v *string) graphql.Marshaler {
			return ec.marshalOString2ᚖstring(ctx, selections, v)
		},
		true,
		false,
	)
}

func (ec *executionContext) _User_secret(ctx context.Context, field graphql.CollectedField, obj *model.User) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_User_secret(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.Secret, nil
		},
		func(ctx context.Context, next graphql.Resolver) graphql.Resolver {
			return ec._fieldMiddleware(ctx, obj, next)
		},
		func(ctx context.Context, selections ast.SelectionSet, v string) graphql.Marshaler {
			return ec.marshalNString2string(ctx, selections, v)
		},
		true,
		true,
	)
}

func (ec *executionContext) _User_data(ctx context.Context, field graphql.CollectedField, obj *model.User) (ret graphql.Marshaler) {
	return graphql.ResolveField(
		ctx,
		ec.OperationContext,
		field,
		func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return ec.fieldContext_User_data(ctx, field)
		},
		func(ctx context.Context) (any, error) {
			return obj.Data, nil
		},
		nil,
		func(ctx context.Context, selections ast.SelectionSet, v map[string]any) graphql.Marshaler {
			return ec.marshalNJSON2map(ctx, selections, v)
		},
		true,
		true,
	)
}
`

// function returns the text of the named function in src.
func function(t *testing.T, src, name string) string {
	t.Helper()
	start := strings.Index(src, "func (ec *executionContext) "+name+"(")
	if start < 0 {
		t.Fatalf("%s is missing", name)
	}
	end := strings.Index(src[start:], "\n}\n")
	return src[start : start+end+3]
}

func TestRewrite(t *testing.T) {
	out, n, err := rewrite("fixture.go", []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("rewrote %d functions, want 2 (openid, createdAt)", n)
	}
	got := string(out)

	openid := function(t, got, "_User_openid")
	if !strings.Contains(openid, "return ec.marshalNString2string(ctx, field.Selections, obj.Openid)") ||
		strings.Contains(openid, "ResolveField") {
		t.Errorf("a plain string field is not marshalled directly:\n%s", openid)
	}

	// A Time! is marshalled directly only when it is not zero; gqlgen's code reports
	// the null otherwise.
	created := function(t, got, "_User_createdAt")
	if !strings.Contains(created, "if !obj.CreatedAt.IsZero() {\n\t\treturn ec.marshalNTime2timeᚐTime(ctx, field.Selections, obj.CreatedAt)\n\t}") ||
		!strings.Contains(created, "return graphql.ResolveField(") {
		t.Errorf("a Time! field lost its guard or gqlgen's path:\n%s", created)
	}

	// A method, a field with a directive and a marshaller not known to be safe stay
	// exactly as gqlgen wrote them.
	for _, name := range []string{"_User_phoneNumber", "_User_secret", "_User_data"} {
		if function(t, got, name) != function(t, fixture, name) {
			t.Errorf("%s was changed:\n%s", name, function(t, got, name))
		}
	}

	again, n, err := rewrite("fixture.go", out)
	if err != nil || n != 0 || string(again) != got {
		t.Errorf("a second run changed %d functions (err %v): not idempotent", n, err)
	}
}

const objectFixture = `package graph

func (ec *executionContext) _User(ctx context.Context, sel ast.SelectionSet, obj *model.User) graphql.Marshaler {
	fields := graphql.CollectFields(ec.OperationContext, sel, userImplementors)

	out := graphql.NewFieldSet(fields)
	deferred := graphql.NewDeferredGroup(ctx)
	for i, field := range fields {
		switch field.Name {
		case "__typename":
			out.Values[i] = graphql.MarshalString("User")
		case "id":
			out.Values[i] = ec._User_id(ctx, field, obj)
			if out.Values[i] == graphql.Null {
				out.Invalids++
			}
		default:
			panic("unknown field " + strconv.Quote(field.Name))
		}
	}
	out.Dispatch(ctx)
	if out.Invalids > 0 {
		return graphql.Null
	}

	if n := len(deferred.Defers); n > 0 {
		atomic.AddInt32(&ec.Deferred, int32(min(n, math.MaxInt32)))
		ec.ProcessDeferredGroup(deferred)
	}

	return out
}

func (ec *executionContext) _Account(ctx context.Context, sel ast.SelectionSet, obj *model.Account) graphql.Marshaler {
	fields := graphql.CollectFields(ec.OperationContext, sel, accountImplementors)

	out := graphql.NewFieldSet(fields)
	deferred := graphql.NewDeferredGroup(ctx)
	for i, field := range fields {
		switch field.Name {
		case "friends":
			out.ResolveConcurrently(ec.OperationContext, &deferred, i,
				true, true,
				func(ctx context.Context) graphql.Marshaler {
					return ec._Account_friends(ctx, field, obj)
				})
		default:
			panic("unknown field " + strconv.Quote(field.Name))
		}
	}
	out.Dispatch(ctx)
	if out.Invalids > 0 {
		return graphql.Null
	}

	if n := len(deferred.Defers); n > 0 {
		atomic.AddInt32(&ec.Deferred, int32(min(n, math.MaxInt32)))
		ec.ProcessDeferredGroup(deferred)
	}

	return out
}
`

func TestRewriteObjects(t *testing.T) {
	out, n, err := rewrite("fixture.go", []byte(objectFixture))
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 { // one object: the constructor and three statements; two collections
		t.Errorf("%d edits, want 6 (User, and where both collect their fields)", n)
	}
	got := string(out)
	user := function(t, got, "_User")
	for _, gone := range []string{"NewFieldSet", "NewDeferredGroup", "Dispatch", "deferred"} {
		if strings.Contains(user, gone) {
			t.Errorf("an object resolved in place still has %s:\n%s", gone, user)
		}
	}
	for _, kept := range []string{"fields := collectFields(ec.OperationContext, sel, userImplementors)", "out := newInlineObject(fields)", "out.Invalids++", "if out.Invalids > 0 {\n\t\treturn graphql.Null", "return out"} {
		if !strings.Contains(user, kept) {
			t.Errorf("an object resolved in place lost %q:\n%s", kept, user)
		}
	}
	// A field in a goroutine of its own (and so perhaps a deferred fragment) keeps
	// gqlgen's field set; only its fields' collection changes.
	account := strings.Replace(function(t, objectFixture, "_Account"), "graphql.CollectFields(", "collectFields(", 1)
	if function(t, got, "_Account") != account {
		t.Errorf("an object with a concurrent field was changed:\n%s", function(t, got, "_Account"))
	}
	if again, n, err := rewrite("fixture.go", out); err != nil || n != 0 || string(again) != got {
		t.Errorf("a second run made %d edits (err %v): not idempotent", n, err)
	}
}

// Only the generated objects' own call, with the operation of the executionContext, is
// graph's collectFields: another call (a resolver's, say) is not the tool's to change.
func TestRewriteCollectCalls(t *testing.T) {
	const src = `package graph

func (ec *executionContext) _T(ctx context.Context, sel ast.SelectionSet) []graphql.CollectedField {
	a := graphql.CollectFields(ec.OperationContext, sel, tImplementors)
	b := graphql.CollectFields(graphql.GetOperationContext(ctx), sel, nil)
	return append(a, b...)
}
`
	out, n, err := rewrite("fixture.go", []byte(src))
	if err != nil || n != 1 {
		t.Fatalf("%d edits (err %v), want 1", n, err)
	}
	want := strings.Replace(src, "a := graphql.CollectFields(", "a := collectFields(", 1)
	if string(out) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", out, want)
	}
}

// graph/generated.go is committed after this step: gqlgen run alone would undo it.
func TestGeneratedExecutorIsRewritten(t *testing.T) {
	src, err := os.ReadFile("../../graph/generated.go")
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := rewrite("generated.go", src); err != nil || n != 0 {
		t.Fatalf("graph/generated.go has %d plain fields left to rewrite (err %v): run 'make generate'", n, err)
	}
	if !strings.Contains(string(src), "return ec.marshalNString2string(ctx, field.Selections, obj.Openid)") {
		t.Error("User.openid is not marshalled directly in graph/generated.go")
	}
	if !strings.Contains(function(t, string(src), "_User"), "out := newInlineObject(fields)") {
		t.Error("User is not an inlineObject in graph/generated.go")
	}
	if strings.Contains(string(src), "graphql.CollectFields(") || !strings.Contains(function(t, string(src), "_User"), "collectFields(ec.OperationContext") {
		t.Error("graph/generated.go collects fields with graphql.CollectFields, not graph's collectFields")
	}
}
