package graph

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wxlogin/wxlogin/internal/input"
	"github.com/wxlogin/wxlogin/internal/persisted"
	"github.com/wxlogin/wxlogin/internal/reqlog"
)

// The media types of a GraphQL response.
const (
	mediaGraphQLResponse = "application/graphql-response+json"
	mediaJSON            = "application/json"
)

// httpTransport serves GraphQL over HTTP as its specification asks, SHOULDs included:
//
//   - The response is application/graphql-response+json or application/json, as the
//     Accept header prefers; application/json when there is no Accept header or it takes
//     anything; 406 when it takes neither.
//   - POST takes a JSON body (Content-Type application/json, UTF-8) and nothing else: no
//     form or multipart transport, which would let another site's page post mutations.
//     GET takes the parameters in the URL and runs queries only (405 for a mutation).
//   - A body that is not JSON, parameters of the wrong type, or a key twice in one
//     object (of the body, the variables or the extensions) get 400.
//   - A document that does not parse or validate, or variables that do not coerce, get
//     400 under application/graphql-response+json and 200 under application/json
//     (which older clients expect), with no data entry either way.
//   - An executed operation gets 200 and a data entry, null or not.
//
// Every refusal goes through the error presenter, so it carries its code.
type httpTransport struct{}

var _ graphql.Transport = httpTransport{}

func (httpTransport) Supports(*http.Request) bool { return true }

func (httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	w.Header().Add("Vary", "Accept")
	w.Header().Set("Cache-Control", "no-store") // answers carry tokens and personal data
	media, acceptable := negotiate(r.Header.Values("Accept"))
	reply := replier{w: w, r: r, exec: exec, media: media}
	if !acceptable {
		reply.refuse(http.StatusNotAcceptable, "The Accept header takes neither application/graphql-response+json nor application/json.")
		return
	}

	var params *graphql.RawParams
	var err error
	switch r.Method {
	case http.MethodGet:
		params, err = urlParams(r.URL.Query())
	case http.MethodPost:
		if !isJSON(r.Header.Get("Content-Type")) {
			reply.refuse(http.StatusUnsupportedMediaType, "POST /graphql takes a JSON body: set Content-Type: application/json.")
			return
		}
		params, err = bodyParams(r.Body)
	case http.MethodOptions:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		reply.refuse(http.StatusMethodNotAllowed, "/graphql takes GET for queries and POST for everything.")
		return
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reply.refuse(http.StatusRequestEntityTooLarge, "The request body is larger than "+sizeName(tooBig.Limit)+".")
			return
		}
		reply.refuse(http.StatusBadRequest, err.Error())
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	ctx := r.Context()
	op, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		reply.write(requestErrorStatus(media, errs), exec.DispatchError(graphql.WithOperationContext(ctx, op), errs), op)
		return
	}
	if r.Method == http.MethodGet && op.Operation.Operation != ast.Query {
		w.Header().Set("Allow", "POST")
		reply.op = op
		reply.refuse(http.StatusMethodNotAllowed, "GET serves queries only: send "+string(op.Operation.Operation)+"s as POST with a JSON body.")
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, op)
	resp := responses(ctx)
	if resp == nil {
		// gqlgen runs nothing, and answers nil, once the request's context has ended
		// before the operation began: the client went away, or the deadline passed.
		err := cmp.Or(ctx.Err(), errors.New("graph: the operation gave no response"))
		resp = exec.DispatchError(ctx, gqlerror.List{gqlerror.Wrap(err)})
	}
	if resp.Data == nil {
		resp.Data = json.RawMessage("null") // an executed operation always has a data entry
	}
	reply.write(http.StatusOK, resp, op)
}

// requestErrorStatus is the status of a document refused before it ran.
func requestErrorStatus(media string, errs gqlerror.List) int {
	if media == mediaJSON {
		return http.StatusOK
	}
	for _, e := range errs {
		if errors.Is(e.Err, persisted.ErrNotAllowed) {
			return http.StatusForbidden
		}
	}
	return http.StatusBadRequest
}

// replier writes the answers of one request.
type replier struct {
	w     http.ResponseWriter
	r     *http.Request
	exec  graphql.GraphExecutor
	media string
	op    *graphql.OperationContext
}

// refuse answers a request that is not a GraphQL request the server takes: no data entry.
func (p replier) refuse(status int, msg string) {
	ctx := p.r.Context()
	if p.op != nil {
		ctx = graphql.WithOperationContext(ctx, p.op)
	}
	p.write(status, p.exec.DispatchError(ctx, gqlerror.List{{Message: msg}}), p.op)
}

// wireResponse is graphql.Response as the spec wants it on the wire: without a data
// entry when nothing ran.
type wireResponse struct {
	Errors     gqlerror.List   `json:"errors,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Extensions map[string]any  `json:"extensions,omitempty"`
}

func (p replier) write(status int, resp *graphql.Response, op *graphql.OperationContext) {
	if e := reqlog.From(p.r.Context()); e != nil {
		if op != nil && op.Operation != nil {
			e.Operation, e.OperationType = op.Operation.Name, string(op.Operation.Operation)
		}
		for _, err := range resp.Errors {
			code, _ := err.Extensions["code"].(string)
			e.ErrorCodes = append(e.ErrorCodes, code)
		}
	}
	b, err := marshalResponse(resp)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errors":[{"message":"`+msgInternal+`","extensions":{"code":"`+CodeInternal+`"}}]}`)
	}
	p.w.Header().Set("Content-Type", p.media+"; charset=utf-8")
	p.w.WriteHeader(status)
	p.w.Write(b)
}

// marshalResponse encodes a response. The usual one, data and nothing else, is written
// around the data gqlgen produced, which is compact JSON already: encoding/json would
// scan it twice more to check and compact it. Data with characters encoding/json
// escapes (<, >, &, U+2028, U+2029) goes through it, so that the bytes are the same
// either way.
func marshalResponse(resp *graphql.Response) ([]byte, error) {
	if len(resp.Errors) == 0 && len(resp.Extensions) == 0 && len(resp.Data) > 0 && !needsEscape(resp.Data) {
		b := make([]byte, 0, len(`{"data":}`)+len(resp.Data))
		b = append(b, `{"data":`...)
		b = append(b, resp.Data...)
		return append(b, '}'), nil
	}
	return json.Marshal(wireResponse{Errors: resp.Errors, Data: resp.Data, Extensions: resp.Extensions})
}

// needsEscape says whether encoding/json would escape something in b. Each byte it
// looks for is found with bytes.IndexByte, several bytes at a time: a byte-by-byte
// loop took 0.9 µs of a `me` answer's time.
func needsEscape(b []byte) bool {
	if bytes.IndexByte(b, '<') >= 0 || bytes.IndexByte(b, '>') >= 0 || bytes.IndexByte(b, '&') >= 0 {
		return true
	}
	// U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
	for i := 0; ; i++ {
		j := bytes.IndexByte(b[i:], 0xE2)
		if j < 0 {
			return false
		}
		if i += j; i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9) {
			return true
		}
	}
}

// negotiate picks the response's media type from the Accept header lines. Each of the
// two types takes the quality of the most specific entry that matches it (exact, then
// application/*, then */*); the higher quality wins, and on a tie graphql-response+json
// wins only when it is named. Entries that do not parse are skipped.
func negotiate(accept []string) (media string, ok bool) {
	header := strings.Join(accept, ",")
	if strings.TrimSpace(header) == "" {
		return mediaJSON, true
	}
	qJSON, qGQL := quality(header, mediaJSON), quality(header, mediaGraphQLResponse)
	switch {
	case qJSON.q <= 0 && qGQL.q <= 0:
		return mediaJSON, false
	case qGQL.q > qJSON.q, qGQL.q == qJSON.q && qGQL.exact:
		return mediaGraphQLResponse, true
	}
	return mediaJSON, true
}

type match struct {
	q           float64
	specificity int // 0: no entry matches; 1: */*; 2: application/*; 3: the type itself
	exact       bool
}

// quality is the quality an Accept header gives one media type.
func quality(header, media string) match {
	var best match
	for part := range strings.SplitSeq(header, ",") {
		params := strings.Split(part, ";")
		mt := strings.ToLower(strings.TrimSpace(params[0]))
		spec := 0
		switch mt {
		case media:
			spec = 3
		case "application/*":
			spec = 2
		case "*/*":
			spec = 1
		default:
			continue
		}
		q, valid := 1.0, true
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					valid = false
				}
				q = f
			}
		}
		if valid && spec > best.specificity {
			best = match{q: q, specificity: spec, exact: spec == 3}
		}
	}
	return best
}

// isJSON says whether a Content-Type is JSON in UTF-8 (the default when no charset is
// given).
func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != mediaJSON {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")
}

const msgBodyShape = `The request body must be one JSON object: {"query": "...", "operationName": "...", "variables": {...}}.`

// bodyParams reads a POST body: one JSON object, each key at most once, in UTF-8.
func bodyParams(body io.Reader) (*graphql.RawParams, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		return nil, input.Errorf("The request body is not valid UTF-8.")
	}
	// The usual body is one object with a few plain keys, each once: its members are
	// found, and the text checked to be JSON, in one pass. Anything else takes the
	// careful path below, which names what is wrong.
	members, ok := topLevelMembers(b)
	if !ok {
		return bodyParamsCarefully(b)
	}
	return params(func(name string) ([]byte, bool, error) {
		for _, m := range members {
			if string(m.key) == name {
				return m.value, true, nil
			}
		}
		return nil, false, nil
	}, true)
}

// member is one key and its value, as text, of a JSON object.
type member struct{ key, value []byte }

// maxPlainMembers bounds the keys topLevelMembers compares pairwise.
const maxPlainMembers = 16

// topLevelMembers splits b, when it is one JSON object, into its members. It says no
// (and the careful path takes over) when b is not JSON or not an object, when a key
// holds an escape (two spellings of one key would compare unequal), when a key comes
// twice, or when there are more than maxPlainMembers of them.
//
// It checks the text as it goes: a string value (a document, most of a body) in place,
// any other value with json.Valid. It was json.Valid over the whole body, which took
// 1 µs of the `me` body's 2.
func topLevelMembers(b []byte) ([]member, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	var members []member
	if i = skipSpace(b, i+1); i < len(b) && b[i] == '}' {
		return members, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		end, ok := validStringEnd(b, i)
		if !ok {
			return nil, false
		}
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 || len(members) == maxPlainMembers {
			return nil, false
		}
		for _, m := range members {
			if bytes.Equal(m.key, key) {
				return nil, false
			}
		}
		if i = skipSpace(b, end); i >= len(b) || b[i] != ':' {
			return nil, false
		}
		start := skipSpace(b, i+1)
		if start >= len(b) {
			return nil, false
		}
		if b[start] == '"' {
			i, ok = validStringEnd(b, start)
		} else {
			i = valueEnd(b, start)
			ok = json.Valid(b[start:i])
		}
		if !ok {
			return nil, false
		}
		members = append(members, member{key, b[start:i]})
		switch i = skipSpace(b, i); {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return members, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

// plainInString marks the bytes a JSON string holds as themselves: neither a quote,
// a backslash nor a control character.
var plainInString = func() (t [256]bool) {
	for c := 0x20; c < len(t); c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// validStringEnd returns the index just past the string that starts at b[i], and
// whether it is a JSON string: closed, no control character, only JSON's escapes.
// (UTF-8 is checked over the whole body.)
func validStringEnd(b []byte, i int) (int, bool) {
	for i++; i < len(b); {
		c := b[i]
		if plainInString[c] {
			i++
			continue
		}
		switch c {
		case '"':
			return i + 1, true
		case '\\':
			if i+1 < len(b) && strings.IndexByte(`"\\/bfnrt`, b[i+1]) >= 0 {
				i += 2
				continue
			}
			if i+6 <= len(b) && b[i+1] == 'u' && isHex(b[i+2:i+6]) {
				i += 6
				continue
			}
		}
		return 0, false // a control character, or an escape JSON has not
	}
	return 0, false // not closed
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i], in valid JSON:
// past its first quote with an even number of backslashes before it (an odd number
// escapes it). The quotes are found with bytes.IndexByte, not byte by byte: a document
// is most of a request's body.
func stringEnd(b []byte, i int) int {
	for i++; ; i++ {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		backslashes := 0
		for k := i - 1; b[k] == '\\'; k-- { // the opening quote ends the run
			backslashes++
		}
		if backslashes%2 == 0 {
			return i + 1
		}
	}
}

// valueEnd returns the index just past the value that starts at b[i], in valid JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
		i++
	}
	return i
}

// bodyParamsCarefully reads the body token by token, to name a duplicate key or say
// what shape the body should have.
func bodyParamsCarefully(b []byte) (*graphql.RawParams, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, input.Errorf(msgBodyShape)
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, input.Errorf(msgBodyShape)
		}
		key := t.(string) // inside an object, a token before a value is its key
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, input.Errorf(msgBodyShape)
		}
		if _, dup := fields[key]; dup {
			return nil, input.Errorf(fmt.Sprintf("The request body has the key %q twice: send each once.", key))
		}
		fields[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, input.Errorf(msgBodyShape)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, input.Errorf(msgBodyShape)
	}
	return params(func(name string) ([]byte, bool, error) {
		v, ok := fields[name]
		return v, ok, nil
	}, true)
}

// urlParams reads the parameters of a GET: query and operationName as text, variables
// and extensions as JSON text.
func urlParams(q url.Values) (*graphql.RawParams, error) {
	return params(func(name string) ([]byte, bool, error) {
		vs, ok := q[name]
		switch {
		case !ok:
			return nil, false, nil
		case len(vs) > 1:
			return nil, false, input.Errorf(fmt.Sprintf("The URL has the parameter %q %d times: send it once.", name, len(vs)))
		case !utf8.ValidString(vs[0]):
			return nil, false, input.Errorf(fmt.Sprintf("The %s parameter is not valid UTF-8.", name))
		case vs[0] == "" && name != "query":
			return nil, false, nil // some clients send variables= for none
		case name == "query" || name == "operationName":
			b, _ := json.Marshal(vs[0])
			return b, true, nil
		}
		return []byte(vs[0]), true, nil
	}, false)
}

// params checks and decodes the request parameters, each as JSON: query and
// operationName strings, variables and extensions objects, any of them null or absent.
// inBody says they are the members of a body already checked as JSON.
func params(get func(name string) (raw []byte, ok bool, err error), inBody bool) (*graphql.RawParams, error) {
	p := &graphql.RawParams{}
	for _, f := range []struct {
		name   string
		object bool
		into   any
	}{
		{"query", false, &p.Query},
		{"operationName", false, &p.OperationName},
		{"variables", true, &p.Variables},
		{"extensions", true, &p.Extensions},
	} {
		raw, ok, err := get(f.name)
		if err != nil {
			return nil, err
		}
		if !ok || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		want := "a string"
		if f.object {
			want = "a JSON object"
		}
		// A body's members come from text json.Valid or the decoder took; a URL's
		// parameters are checked here.
		if !inBody && !json.Valid(raw) {
			return nil, input.Errorf(fmt.Sprintf("The %s parameter is not valid JSON: it must be %s.", f.name, want))
		}
		if s, ok := f.into.(*string); ok {
			if text, ok := unquote(raw); ok {
				*s = text
				continue
			}
		}
		// Numbers decode as float64, not json.Number: gqlparser takes a json.Number
		// (a string underneath) for a String variable, and the spec says 5 is no String.
		if err := json.Unmarshal(raw, f.into); err != nil {
			return nil, input.Errorf(fmt.Sprintf("The %s parameter must be %s.", f.name, want))
		}
		// One object with a key twice means what each reader decides (the last wins
		// here, the first in some proxies): refuse it rather than guess. Decoding kept
		// one of each, so fewer keys decoded than the text holds means a duplicate; only
		// then is the text read token by token, to name it.
		if m, ok := f.into.(*map[string]any); ok && membersIn(raw) != keysIn(*m) {
			key, _ := duplicateKey(raw)
			return nil, input.Errorf(fmt.Sprintf("The %s parameter has the key %q twice in one object: send each once.", f.name, key))
		}
	}
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return nil, input.Errorf(`The request has no query: send the document as "query".`)
	}
	return p, nil
}

// unquote decodes a JSON string that json.Valid took, when its escapes are the
// one-letter ones (a document's newlines and quotes); it says no to \u escapes, which
// encoding/json decodes instead.
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	raw = raw[1 : len(raw)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw), true // valid JSON has no control characters in a string
	}
	var b strings.Builder
	b.Grow(len(raw))
	for {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 {
			b.Write(raw)
			return b.String(), true
		}
		b.Write(raw[:i])
		if i+1 == len(raw) {
			return "", false // not JSON: json.Valid let nothing like it through
		}
		c := raw[i+1]
		raw = raw[i+2:]
		switch c {
		case '"', '\\', '/':
			b.WriteByte(c)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		default:
			return "", false
		}
	}
}

// membersIn counts the members of every object in valid JSON text b: its colons
// outside strings.
func membersIn(b []byte) int {
	n, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ':':
			n++
		}
	}
	return n
}

// keysIn counts the keys of every object in v, as encoding/json decodes JSON into any.
func keysIn(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		n = len(v)
		for _, e := range v {
			n += keysIn(e)
		}
	case []any:
		for _, e := range v {
			n += keysIn(e)
		}
	}
	return n
}

// duplicateKey finds a key that appears twice in one object, at any depth, of raw,
// which is valid JSON.
func duplicateKey(raw []byte) (string, bool) {
	type frame struct {
		keys    map[string]struct{} // nil for an array
		wantKey bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		t, err := dec.Token()
		if err != nil {
			return "", false // the end
		}
		if d, ok := t.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if top != nil && top.keys != nil {
			if top.wantKey {
				key := t.(string) // a token where a key is due is the key
				if _, dup := top.keys[key]; dup {
					return key, true
				}
				top.keys[key] = struct{}{}
				top.wantKey = false
				continue
			}
			top.wantKey = true // t starts this member's value; the next member's key follows it
		}
		switch t {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]struct{}{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		}
	}
}

// sizeName says a byte count the way people write limits: 1 MiB, 512 KiB, 1000 bytes.
func sizeName(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
