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
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

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
	if op.Operation.Operation == ast.Subscription {
		reply.op = op
		reply.refuse(http.StatusBadRequest, "Subscriptions run over Server-Sent Events: POST with Accept: text/event-stream.")
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

// needsEscape says whether encoding/json would escape something in b.
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

// bodyParams reads a POST body: one JSON object in UTF-8, each key at most once.
func bodyParams(body io.Reader) (*graphql.RawParams, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		return nil, input.Errorf("The request body is not valid UTF-8.")
	}
	v, err := readJSON(b)
	if err != nil {
		return nil, jsonProblem(err, "The request body", msgBodyShape)
	}
	members, ok := v.(map[string]any)
	if !ok {
		return nil, input.Errorf(msgBodyShape)
	}
	return params(func(name string) (any, error) { return members[name], nil })
}

// urlParams reads the parameters of a GET: query and operationName as text, variables
// and extensions as JSON text.
func urlParams(q url.Values) (*graphql.RawParams, error) {
	return params(func(name string) (any, error) {
		vs, ok := q[name]
		switch {
		case !ok:
			return nil, nil
		case len(vs) > 1:
			return nil, input.Errorf(fmt.Sprintf("The URL has the parameter %q %d times: send it once.", name, len(vs)))
		case !utf8.ValidString(vs[0]):
			return nil, input.Errorf(fmt.Sprintf("The %s parameter is not valid UTF-8.", name))
		case vs[0] == "" && name != "query":
			return nil, nil // some clients send variables= for none
		case name == "query" || name == "operationName":
			return vs[0], nil
		}
		v, err := readJSON([]byte(vs[0]))
		if err != nil {
			return nil, jsonProblem(err, "The "+name+" parameter", "The "+name+" parameter is not valid JSON: it must be a JSON object.")
		}
		return v, nil
	})
}

// params checks the request parameters, decoded from JSON: query and operationName
// strings, variables and extensions objects, any of them null or absent.
func params(get func(name string) (any, error)) (*graphql.RawParams, error) {
	p := &graphql.RawParams{}
	for _, f := range []struct {
		name string
		into any
	}{
		{"query", &p.Query},
		{"operationName", &p.OperationName},
		{"variables", &p.Variables},
		{"extensions", &p.Extensions},
	} {
		v, err := get(f.name)
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		switch into := f.into.(type) {
		case *string:
			s, ok := v.(string)
			if !ok {
				return nil, input.Errorf(fmt.Sprintf("The %s parameter must be a string.", f.name))
			}
			*into = s
		case *map[string]any:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, input.Errorf(fmt.Sprintf("The %s parameter must be a JSON object.", f.name))
			}
			*into = m
		}
	}
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return nil, input.Errorf(`The request has no query: send the document as "query".`)
	}
	return p, nil
}

// maxJSONDepth bounds how deeply a request's JSON nests: no GraphQL input comes near
// it, and reading each level takes a call.
const maxJSONDepth = 64

// duplicateKeyError is a key sent twice in one object.
type duplicateKeyError string

func (k duplicateKeyError) Error() string {
	return fmt.Sprintf("the key %q twice in one object", string(k))
}

var errTooDeep = errors.New("nested too deeply")

// readJSON decodes one JSON value, alone in b, as encoding/json decodes into any
// (objects as map[string]any, numbers as float64: gqlparser would take a json.Number,
// a string underneath, for a String variable, and 5 is no String). Unlike
// encoding/json it refuses an object with a key twice, which means whatever each
// reader decides (the last wins in encoding/json, the first in some proxies), and
// nesting past maxJSONDepth.
func readJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	v, err := readValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// readValue reads the value that starts at the decoder's next token.
func readValue(dec *json.Decoder, depth int) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := t.(json.Delim)
	if !ok {
		return t, nil // a string, a float64, a bool or nil
	}
	if depth == maxJSONDepth {
		return nil, errTooDeep
	}
	var v any
	if d == '{' {
		m := map[string]any{}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key := t.(string) // inside an object, the token before a value is its key
			e, err := readValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := m[key]; dup {
				return nil, duplicateKeyError(key)
			}
			m[key] = e
		}
		v = m
	} else {
		list := []any{}
		for dec.More() {
			e, err := readValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, e)
		}
		v = list
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return nil, err
	}
	return v, nil
}

// jsonProblem is the input error for JSON that readJSON refused, in what.
func jsonProblem(err error, what, notJSON string) error {
	var dup duplicateKeyError
	switch {
	case errors.As(err, &dup):
		return input.Errorf(fmt.Sprintf("%s has the key %q twice in one object: send each once.", what, string(dup)))
	case errors.Is(err, errTooDeep):
		return input.Errorf(fmt.Sprintf("%s nests more than %d levels deep.", what, maxJSONDepth))
	}
	return input.Errorf(notJSON)
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

// sseTransport runs subscriptions over Server-Sent Events (graphql-sse's distinct
// connections mode: POST with Accept: text/event-stream). It is gqlgen's transport,
// after the body was read as every other request's is (bodyParams): a malformed body
// is refused here, since gqlgen's would log it, and a web login's secret is in it. The
// stream may outlive the server's write timeout, up to the request's deadline.
type sseTransport struct{ transport.SSE }

func (t sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	w.Header().Set("Cache-Control", "no-store")
	b, err := io.ReadAll(r.Body)
	var params *graphql.RawParams
	if err == nil {
		params, err = bodyParams(bytes.NewReader(b))
	}
	if err != nil {
		reply := replier{w: w, r: r, exec: exec, media: mediaJSON}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reply.refuse(http.StatusRequestEntityTooLarge, "The request body is larger than "+sizeName(tooBig.Limit)+".")
			return
		}
		reply.refuse(http.StatusBadRequest, err.Error())
		return
	}
	// The stream's long deadline is for subscriptions: a query or a mutation keeps to
	// the plain transport's. (A document sent by hash alone is known only later.)
	if !subscription(params) && params.Query != "" {
		reply := replier{w: w, r: r, exec: exec, media: mediaJSON}
		reply.refuse(http.StatusBadRequest, "Only subscriptions run over Server-Sent Events: send queries and mutations without Accept: text/event-stream.")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	if end, ok := r.Context().Deadline(); ok {
		http.NewResponseController(w).SetWriteDeadline(end)
	}
	t.SSE.Do(w, r, exec)
}

// subscription says whether the operation params name is a subscription, or may be: a
// document that does not parse, or names no such operation, goes on to the executor,
// which says why.
func subscription(params *graphql.RawParams) bool {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, parserTokenLimit)
	if err != nil {
		return true
	}
	for _, op := range doc.Operations {
		if params.OperationName == "" || op.Name == params.OperationName {
			return op.Operation == ast.Subscription
		}
	}
	return true
}
