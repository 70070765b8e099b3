"""The workbench page in real headless Debian chromium (Playwright drives the
binary): sign in with a token, filter the queue, open an alert, see its money
route drawn, acknowledge it, see the audit entry; a viewer sees no actions; the
overview draws its charts; nothing is fetched from anywhere but the server.
Screenshots go to tests/screenshots/."""

from __future__ import annotations

from playwright.sync_api import expect

from connectors.alert_store import AlertStore
from tests.workbench_kit import SCREENSHOTS, browser, copy_store, served, sign_in, tokens


def _expected(db) -> tuple[int, int, str, int]:
    """Alerts, borrowers, and a rule each of whose alerts carries a money route, with its count."""
    with AlertStore(db) as s:
        total, borrowers = s._sql("SELECT count(*), count(DISTINCT borrower_id) FROM alerts")[0]
        rule, count = s._sql(
            "SELECT rule_id, count(*) FROM alerts GROUP BY rule_id "
            "HAVING bool_and(evidence->>'$.path[0]' SIMILAR TO '\\S+: \\S+ -> \\S+ .* at .*') "
            "ORDER BY count(*) DESC, rule_id LIMIT 1")[0]
    return total, borrowers, rule, count


def test_sign_in_filter_open_see_the_route_acknowledge_and_see_the_audit(sim_store, tmp_path):
    db = copy_store(sim_store, tmp_path / "page.duckdb")
    keys = tokens(db)
    total, borrowers, rule, count = _expected(db)
    with served(db) as url, browser() as context:
        requested: list[str] = []
        context.on("request", lambda r: requested.append(r.url))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        expect(page.locator("#signin-view")).to_be_visible()
        page.fill("#token", "fw_wrong")
        page.click("#signin")
        expect(page.locator("#signin-error")).to_contain_text("not valid")

        sign_in(page, url, keys["analyst"])
        expect(page.locator("#whoami")).to_have_text("analyst (analyst)")
        expect(page.locator("#showing")).to_contain_text(f"showing {min(50, total)} of {total}")
        page.screenshot(path=str(SCREENSHOTS / "1-queue.png"))

        page.fill("#f-rule", rule)
        page.click("#apply")
        expect(page.locator("#showing")).to_contain_text(f"showing {min(50, count)} of {count}")
        expect(page.locator("#queue tbody tr")).to_have_count(min(50, count))
        page.screenshot(path=str(SCREENSHOTS / "2-queue-filtered.png"))

        page.locator("#queue tbody tr").first.click()
        expect(page.locator("#alert-view")).to_be_visible()
        expect(page.locator("#a-title")).to_contain_text(rule)
        route = page.locator("#route svg")
        expect(route).to_be_visible()
        lines = page.locator("#a-path li").all_inner_texts()  # "TX: payer -> payee amount at time"
        parties = {p for line in lines for p in line.split(": ", 1)[1].split()[:3:2]}
        assert len(lines) >= 2
        expect(route.locator("g.edge.payment")).to_have_count(len(lines))
        expect(route.locator("g.node")).to_have_count(len(parties))
        expect(route.locator("g.node.borrower")).to_have_count(1)
        expect(page.locator("#a-rule")).to_contain_text("Investigation")
        page.screenshot(path=str(SCREENSHOTS / "3-alert-route.png"), full_page=True)

        expect(page.locator("#audit tbody tr")).to_have_count(0)
        page.fill("#reason", "looking into the payment")
        page.click("button.action[data-to=acknowledged]")
        expect(page.locator("#a-facts")).to_contain_text("acknowledged")
        entry = page.locator("#audit tbody tr")
        expect(entry).to_have_count(1)
        expect(entry).to_contain_text("analyst")
        expect(entry).to_contain_text("looking into the payment")
        expect(page.locator("button.action[data-to=investigating]")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "4-alert-acknowledged.png"), full_page=True)

        page.goto(url + "/#/overview")
        expect(page.locator("#ov-days svg rect").first).to_be_attached()
        expect(page.locator("#ov-open")).to_contain_text(str(total))
        expect(page.locator("#ov-borrowers tbody tr")).to_have_count(min(10, borrowers))
        page.screenshot(path=str(SCREENSHOTS / "5-overview.png"), full_page=True)

        page.click("#signout")
        sign_in(page, url, keys["viewer"])
        page.locator("#queue tbody tr").first.click()
        expect(page.locator("#actions")).to_contain_text("viewer token can only read")
        expect(page.locator("button.action")).to_have_count(0)
        assert errors == []
        assert requested and all(r.startswith(url + "/") for r in requested), sorted(set(requested))
