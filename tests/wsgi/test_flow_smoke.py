from tests.fakes import FakeProvider


def test_sso_signs_in_and_lands_on_target(browser, provider: FakeProvider) -> None:
    response = browser.get("/auth/sso", {"connection": "Username-Password-Authentication", "target_url": "/dashboard"})
    assert response.status_int == 303
    callback = provider.authorize(response.location)
    assert provider.last_grant.params["prompt"] == "none"
    response = browser.get(callback)
    assert response.status_int == 303, response
    assert response.location.endswith("/dashboard")
    page = browser.get("/dashboard").json
    assert page["remote_user"] == "alice"
    assert page["userinfo"]["email"] == "alice@example.com"
