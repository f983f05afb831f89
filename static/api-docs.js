// API reference page (/api/docs): the OpenAPI document of every /api/v1 route, shown by RapiDoc
// (vendored in /static/vendor/rapidoc; nothing is fetched from another origin, web fonts are off).
//
// Flow: /api/v1/me (a signed-out visitor is sent to the sign-in page, which brings them back
// here) → the top bar → GET /api/v1/openapi.json (a 401 also goes to the sign-in page) →
// RapiDoc renders it. "Try" calls carry the session cookie and, like the dashboard's own calls,
// X-CSRF-Token, so writes work for the signed-in user; a bearer token typed into RapiDoc's
// authentication box is kept for this page only (persist-auth is off).
import { api, me, renderNav, showFatal } from "/static/app.js";

const reference = document.getElementById("api-reference");
const status = document.getElementById("docs-status");
const main = document.getElementById("api-docs");

try {
  const current = await me();
  renderNav(current, "api");
  const doc = await api("GET", "/api/v1/openapi.json");
  await customElements.whenDefined("rapi-doc");
  reference.addEventListener("before-try", (event) => {
    const { request } = event.detail;
    if (current.csrf_token && !["GET", "HEAD"].includes(String(request.method).toUpperCase())) {
      request.headers.set("X-CSRF-Token", current.csrf_token);
    }
  });
  reference.addEventListener("spec-loaded", () => {
    status.hidden = true;
    main.setAttribute("aria-busy", "false");
  });
  await reference.loadSpec(doc);
  if (reference.loadFailed) throw new Error("The API document could not be read.");
} catch (err) {
  // A 401 already sent the browser to the sign-in page.
  if (err.status !== 401) {
    status.hidden = true;
    main.setAttribute("aria-busy", "false");
    showFatal(err);
  }
}
