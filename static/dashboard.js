// Dashboard shell: who is signed in, the top bar, and the mount point <section id="devices">.
import { me, renderNav, showFatal } from "/static/app.js";

try {
  const current = await me();
  renderNav(current, "devices");
  const name = current.user.display_name || current.user.email;
  const whoami = document.getElementById("whoami");
  whoami.replaceChildren(
    "Signed in as ",
    Object.assign(document.createElement("strong"), { textContent: name }),
    " · ",
    Object.assign(document.createElement("span"), { textContent: current.tenant.name }),
  );
  document.dispatchEvent(new CustomEvent("wafleet:me", { detail: current }));
} catch (err) {
  if (err.status !== 401) showFatal(err);
}
