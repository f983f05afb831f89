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
    const session = await api(
      "POST",
      "/api/v1/auth/login",
      { email: email.value.trim(), password: password.value },
      { csrf: false, redirectOn401: false },
    );
    if (session.must_change_password) {
      askForNewPassword(password.value);
      return;
    }
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

const passwordForm = document.getElementById("password-form");
const currentPassword = document.getElementById("current-password");
const newPassword = document.getElementById("new-password");
const repeatPassword = document.getElementById("repeat-password");
const setButton = document.getElementById("set-password");

/**
 * A one-time (generated or reset) password must be replaced before anything else: the API
 * answers `password_change_required` until then. `current` is the password just typed, or
 * empty when the page was opened already signed in (the field is shown then).
 */
function askForNewPassword(current) {
  form.hidden = true;
  passwordForm.hidden = false;
  currentPassword.value = current;
  document.getElementById("current-field").hidden = Boolean(current);
  newPassword.focus();
}

passwordForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearAlert(errorBox);
  if (newPassword.value.length < 10) {
    showAlert(errorBox, "The new password needs at least 10 characters.");
    newPassword.focus();
    return;
  }
  if (newPassword.value !== repeatPassword.value) {
    showAlert(errorBox, "The two new passwords differ.");
    repeatPassword.select();
    return;
  }
  setButton.disabled = true;
  try {
    await api("POST", "/api/v1/me/password", {
      current_password: currentPassword.value,
      new_password: newPassword.value,
    }, { redirectOn401: false });
    location.replace(destination());
  } catch (err) {
    showAlert(errorBox, err instanceof ApiError ? err.message : "Could not set the password.");
    setButton.disabled = false;
  }
});

// Already signed in (e.g. the back button): skip the form, unless the password must change.
api("GET", "/api/v1/me", undefined, { redirectOn401: false })
  .then((me) => (me.must_change_password ? askForNewPassword("") : location.replace(destination())))
  .catch(() => {});
