// The playground page's script: GraphiQL against the endpoint the server names in the
// page's data attributes. The server also chooses the opening document and headers
// (a ready dev login in dev mode), so this file is the same in every mode.
import { createRoot } from 'react-dom/client';
import { setNonce } from 'get-nonce';
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import './page.css';

const root = document.getElementById('graphiql');
const { endpoint, defaultQuery, defaultHeaders, editorTools, styleNonce } = root.dataset;

// GraphiQL's dialogs add a <style> element while open; the page's Content-Security-Policy
// lets it apply only with this response's nonce.
setNonce(styleNonce);

// A plain JSON POST: wxlogin serves no subscriptions, so no websocket client is needed.
async function fetcher(params, opts) {
  const res = await fetch(endpoint, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...opts?.headers },
    body: JSON.stringify(params),
  });
  return res.json();
}

createRoot(root).render(
  <GraphiQL
    fetcher={fetcher}
    defaultQuery={defaultQuery}
    defaultHeaders={defaultHeaders || undefined}
    defaultEditorToolsVisibility={editorTools || undefined}
  />,
);
