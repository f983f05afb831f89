"""Signs in as the platform admin and prints a new API token with the admin scope."""
import json
import sys
import urllib.request
from http.cookiejar import CookieJar

base, email, password = sys.argv[1:4]
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))


def call(method, path, body=None, csrf=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Origin": base},
    )
    if csrf:
        request.add_header("X-CSRF-Token", csrf)
    with opener.open(request) as response:
        return json.load(response)


session = call("POST", "/api/v1/auth/login", {"email": email, "password": password})
token = call(
    "POST",
    "/api/v1/tokens",
    {"name": "schemathesis", "scopes": ["read", "write", "admin"]},
    csrf=session["csrf_token"],
)
print(token["token"])
