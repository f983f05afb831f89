// Sign-in page: posts the form to /api/v1/auth/login and goes to the dashboard (or `?next=`).
import { api, ApiError, showAlert, clearAlert, waitText } from "/static/app.js";

const form = document.getElementById("login-form");
const email = document.getElementById("email");
const password = document.getElementById("password");
const button = document.getElementById("login");
const errorBox = document.getElementById("login-error");

/** Where to go after signing in: `?next=` if it is a path on this site, else the dashboard. */
function destination() {
  const next = new URLSearchParams(location.search).get("next");
  if (!next) return "/";
  try {
    const url = new URL(next, location.origin);
    if (url.origin === location.origin && !url.pathname.startsWith("/static/login.html")) {
      return url.pathname + url.search + url.hash;
    }
  } catch {
    // Malformed: ignore it.
  }
  return "/";
}

/** Keeps the button disabled while a rate limit lasts, counting down on it. */
function lockFor(secs) {
  let left = secs;
  button.disabled = true;
  const tick = () => {
    if (left <= 0) {
      clearInterval(timer);
      button.disabled = false;
      button.textContent = "Sign in";
      return;
    }
    button.textContent = `Try again in ${waitText(left)}`;
    left -= 1;
  };
  const timer = setInterval(tick, 1000);
  tick();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearAlert(errorBox);
  if (!email.value.trim() || !password.value) {
    showAlert(errorBox, "Enter your email and password.");
    (email.value.trim() ? password : email).focus();
    return;
  }
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    await api(
      "POST",
      "/api/v1/auth/login",
      { email: email.value.trim(), password: password.value },
      { csrf: false, redirectOn401: false },
    );
    location.replace(destination());
  } catch (err) {
    const message = err instanceof ApiError ? err.message : "Sign-in failed. Try again.";
    showAlert(errorBox, message);
    button.disabled = false;
    button.textContent = "Sign in";
    if (err instanceof ApiError && err.code === "rate_limited" && err.retryAfterSecs) {
      lockFor(err.retryAfterSecs);
    } else if (err instanceof ApiError && err.code === "invalid_credentials") {
      password.select();
      password.focus();
    }
  }
});

// Already signed in (e.g. the back button): skip the form.
api("GET", "/api/v1/me", undefined, { redirectOn401: false })
  .then(() => location.replace(destination()))
  .catch(() => {});
