"""Reference data of the simulated bank: parties, accounts, loans, relations, sites.

Everything is index based (a party, account, loan, relation or site is an int);
string ids are assigned once, in the writer, through a seeded permutation, so an
id never hints at the role or the injected case of what it names.

The normal world is built to be *clean*: no guarantee cycle or chain longer
than two edges, no guarantor above 2x its net assets, no two borrowers sharing
a legal representative, phone or address without a declared relation.  The
injected cases (cases.py) then break exactly these properties on purpose.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from .calendar import SPRING_AFTER, SPRING_BEFORE
from .horizon import Horizon

FIRM_SECTORS = ("manufacturing", "wholesale", "retail", "construction", "logistics", "agriculture", "food",
                "it_services")
FIRM_SECTOR_P = (0.25, 0.15, 0.12, 0.12, 0.10, 0.08, 0.10, 0.08)
SUPPLIER_SECTORS = ("manufacturing", "wholesale", "agriculture", "logistics", "food", "it_services", "construction")
CUSTOMER_SECTORS = ("retail", "wholesale", "food", "manufacturing", "construction", "logistics")
PROHIBITED = ("real_estate", "securities", "futures", "crypto", "lending", "gambling")
SECTOR_WORD = {
    "manufacturing": "Machinery", "wholesale": "Trading", "retail": "Retail", "construction": "Construction",
    "logistics": "Logistics", "agriculture": "Agriculture", "food": "Foods", "it_services": "Technology",
    "utilities": "Utilities", "real_estate": "Property", "securities": "Securities", "futures": "Futures",
    "crypto": "Digital Assets", "lending": "Microcredit", "gambling": "Gaming", "guarantee": "Financing Guarantee",
}
SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun", "Ma",
            "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo", "Zheng", "Liang", "Xie", "Song", "Tang", "Han")
GIVEN = ("Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Jun", "Yan", "Tao", "Ming", "Chao", "Xiu",
         "Hui", "Bo", "Ping", "Gang", "Li", "Hong", "Yong", "Jie", "Xin", "Lan", "Hao")
SYLLABLES = ("Hua", "Xin", "Tai", "Feng", "Long", "Sheng", "Jin", "Da", "Heng", "Rui", "Kang", "Yuan",
             "Tong", "Bao", "Fu", "Ming", "Hong", "Cheng", "An", "Lian", "Wei", "Jia", "Ding", "Xiang")
REGIONS = (("Jiangsu", "Nanjing", 320100), ("Zhejiang", "Hangzhou", 330100), ("Guangdong", "Guangzhou", 440100),
           ("Shandong", "Jinan", 370100), ("Henan", "Zhengzhou", 410100), ("Sichuan", "Chengdu", 510100),
           ("Hubei", "Wuhan", 420100), ("Fujian", "Fuzhou", 350100), ("Shanghai", "Shanghai", 310100),
           ("Anhui", "Hefei", 340100))
STREETS = ("Renmin", "Jiefang", "Zhongshan", "Jianshe", "Xinhua", "Heping", "Changjiang", "Huanghe",
           "Kaifa", "Gongye", "Chaoyang", "Wenhua", "Keji", "Binhe")
UNITS = {"manufacturing": "pcs", "wholesale": "pallets", "retail": "pcs", "construction": "t",
         "logistics": "pallets", "agriculture": "t", "food": "t", "it_services": "pcs"}
PURPOSE_TERM_DAYS = {"working_capital": 365, "fixed_asset": 1095, "trade_finance": 90, "consumer": 730,
                     "mortgage": 7300}
ENTRUSTED_ABOVE = {"working_capital": 5e6, "consumer": 3e5}  # self-payment allowed up to this principal
SHOPS = ("retail", "food")  # open through the holidays, busiest before the Spring Festival
SEASONAL = ("agriculture", "food")  # an annual cycle of +-25%


def payment_terms(rng: np.random.Generator, purpose: str, principal: float) -> tuple[bool, str]:
    """(entrusted payment, repayment schedule) as the bank books them.

    Fixed-asset loans, mortgages and trade finance are paid to the payees by the
    bank; working-capital and consumer loans may be drawn by the borrower itself
    (自主支付) up to a limit, and half of those that may are. Trade finance is repaid
    at maturity (90 days); 40% of working-capital loans pay interest quarterly;
    everything else pays monthly."""
    limit = ENTRUSTED_ABOVE.get(purpose)
    entrusted = limit is None or principal > limit or rng.random() < 0.5
    if purpose == "trade_finance":
        return entrusted, "bullet"
    if purpose == "working_capital" and rng.random() < 0.4:
        return entrusted, "quarterly_interest"
    return entrusted, "monthly"


class Table:
    """Column lists with append-by-row; reference data is small (thousands of rows)."""

    def __init__(self, *cols: str):
        self.cols: dict[str, list] = {c: [] for c in cols}

    def add(self, **row) -> int:
        n = len(self)
        for c, values in self.cols.items():
            values.append(row.get(c))
        return n

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))

    def __getitem__(self, col: str) -> list:
        return self.cols[col]


def _mix(serial: int, prime: int = 1_000_003) -> int:
    """A bijection of serial numbers: unique identifiers that do not reveal creation order."""
    return (serial * 7919 + 104_729) % prime


class World:
    """Reference data plus per-borrower business profiles and the case flags normal flows obey."""

    def __init__(self, h: Horizon, rng: np.random.Generator):
        self.h, self.rng = h, rng
        self.parties = Table("kind", "name", "sector", "region", "registered_on", "legal_rep", "address", "phone",
                             "net_assets")
        self.accounts = Table("party", "kind", "opened_on")
        self.loans = Table("borrower", "account", "principal", "day", "sec", "purpose", "payees", "collateral",
                           "rate", "repay_dom", "repay_sec", "risk_class", "use", "entrusted", "repay", "term")
        # guarantee relations tied to a loan get valid_from/amount from the loan in finalize()
        self.relations = Table("kind", "src", "dst", "amount", "share", "valid_from", "valid_to",
                               "loan", "lead", "frac")
        self.sites = Table("borrower", "unit", "pledged", "headcount", "kwh_per_head")
        self.acc_of: list[int] = []  # main (settlement/external) account of each party
        self.serial = 0
        self.overexposed: set[int] = set()  # guarantor parties whose net assets a case sets
        self.fronts: set[int] = set()  # front companies named in a contract (cases.py)

    # --- construction helpers ------------------------------------------------

    def person_name(self) -> str:
        return f"{SURNAMES[self.rng.integers(len(SURNAMES))]} {GIVEN[self.rng.integers(len(GIVEN))]}"

    def party(self, kind: str, sector: str, name: str | None = None, account: str = "external",
              region: int | None = None, registered: date | None = None, net_assets: float | None = None,
              legal_rep: str | None = None) -> int:
        rng = self.rng
        if net_assets is None:  # every party has a balance sheet, so its presence reveals nothing
            net_assets = round(rng.lognormal(16, 1.0) if kind == "firm" else rng.uniform(5e4, 2e6), -3)
        self.serial += 1
        r = REGIONS[rng.integers(len(REGIONS)) if region is None else region]
        if name is None:
            if kind == "firm":
                brand = SYLLABLES[rng.integers(len(SYLLABLES))] + SYLLABLES[rng.integers(len(SYLLABLES))].lower()
                name = f"{r[1]} {brand} {SECTOR_WORD.get(sector, 'Industrial')} Co., Ltd."
            else:
                name = self.person_name()
        if registered is None:
            registered = date(1998, 1, 1) + timedelta(days=int(rng.integers(0, 9000)))
        p = self.parties.add(
            kind=kind, name=name, sector=sector, region=r[0], registered_on=registered, legal_rep=legal_rep,
            address=f"{_mix(self.serial)} {STREETS[rng.integers(len(STREETS))]} Road, {r[1]}",
            phone=f"1{3 + self.serial % 7}{_mix(self.serial, 999_999_937):09d}", net_assets=float(net_assets))
        self.acc_of.append(self.account(p, account, registered) if account else -1)
        return p

    def account(self, party: int, kind: str, opened: date) -> int:
        return self.accounts.add(party=party, kind=kind, opened_on=opened)

    def legal_rep_of(self, person: int) -> str:
        """A legal representative as the registry shows it: name and (masked-free) ID number."""
        serial = _mix(person, 9_999_991)
        born = date(1955, 1, 1) + timedelta(days=serial % 12000)
        return f"{self.parties['name'][person]} (ID {born:%Y%m%d}{serial:07d})"

    def relate(self, kind: str, src: int, dst: int, valid_from: date | None, amount=None, share=None,
               loan: int = -1, lead: int = 0, frac: float = 0.0) -> int:
        """A relation. A declared one (not a guarantee) without a date holds from the day both
        parties existed; a guarantee without one gets its dates from its loan (finalize)."""
        if valid_from is None and kind != "guarantee":
            registered = self.parties["registered_on"]
            valid_from = max(registered[src], registered[dst])
        return self.relations.add(kind=kind, src=src, dst=dst, amount=amount, share=share, valid_from=valid_from,
                                  valid_to=None, loan=loan, lead=lead, frac=frac)

    def guarantee(self, src: int, loan: int, frac: float | None = None) -> int:
        """A guarantee for `loan`, signed a few days before its disbursement (dates fixed in finalize)."""
        rng = self.rng
        frac = float(rng.uniform(0.3, 1.0)) if frac is None else frac
        return self.relate("guarantee", src, self.loans["borrower"][loan], None, loan=loan,
                           lead=int(rng.integers(1, 11)), frac=frac)

    def pre_horizon(self, lo: int = 30, hi: int = 900) -> date:
        return self.h.start - timedelta(days=int(self.rng.integers(lo, hi)))

    def add_loan(self, b: int, purpose: str, principal: float, day: int, payees: list[int],
                 collateral: list[dict], rate: float | None = None) -> int:
        rng, h = self.rng, self.h
        day = h.disbursement_day(day)
        disb = self.account(self.borrower[b], "disbursement", h.date_of(max(0, day - int(rng.integers(0, 6)))))
        entrusted, repay = payment_terms(rng, purpose, principal)
        loan = self.loans.add(
            borrower=self.borrower[b], account=disb, principal=float(principal), day=day,
            sec=int(rng.integers(9 * 3600, 16 * 3600)), purpose=purpose, payees=payees, collateral=collateral,
            rate=float(rng.uniform(0.032, 0.065)) if rate is None else rate, repay_dom=int(rng.integers(1, 29)),
            repay_sec=int(rng.integers(8 * 3600, 9 * 3600 + 1800)),
            risk_class="special_mention" if rng.random() < 0.03 else "normal", use="normal",
            entrusted=entrusted, repay=repay, term=PURPOSE_TERM_DAYS[purpose])
        self.loans_of[b].append(loan)
        return loan

    def due_days(self, loan: int) -> list[int]:
        """Repayment days inside the horizon, the first at least 15 days after disbursement: monthly on the
        loan's day of month; quarterly on the 20th of March, June, September and December; bullet at maturity."""
        L, h = self.loans, self.h
        first = L["day"][loan] + 15
        if L["repay"][loan] == "bullet":
            due = L["day"][loan] + L["term"][loan]
            return [int(due)] if due < h.days else []
        if L["repay"][loan] == "quarterly_interest":
            months = np.array([d.month for d in h.dates])
            days = np.nonzero((h.dom == 20) & np.isin(months, (3, 6, 9, 12)))[0]
        else:
            days = np.nonzero(h.dom == L["repay_dom"][loan])[0]
        return [int(d) for d in days if d >= first]

    def front_company(self, b: int) -> int:
        """A trading firm registered shortly before it is used, with little business of its own: the
        conduit a borrower sets up to move loan money (its payee in the contract, or paid from its account)."""
        rng = self.rng
        return self.party("firm", str(rng.choice(("wholesale", "it_services", "logistics"))),
                          region=int(self.region[b]), registered=self.pre_horizon(20, 400),
                          net_assets=float(round(rng.uniform(1e5, 1e6), -3)))

    # --- finishing -------------------------------------------------------------

    def finalize(self) -> None:
        """Fix what depends on (possibly case-overridden) loans: guarantee dates/amounts, guarantor net assets."""
        rel, loans, h, rng = self.relations, self.loans, self.h, self.rng
        exposure: dict[int, float] = {}
        for r in range(len(rel)):
            if rel["kind"][r] != "guarantee":
                continue
            loan = rel["loan"][r]
            if loan >= 0 and rel["valid_from"][r] is None:
                rel["valid_from"][r] = h.date_of(loans["day"][loan]) - timedelta(days=rel["lead"][r])
                rel["amount"][r] = float(round(rel["frac"][r] * loans["principal"][loan], -4)) or 10_000.0
            exposure[rel["src"][r]] = exposure.get(rel["src"][r], 0.0) + rel["amount"][r]
        net, sector = self.parties["net_assets"], self.parties["sector"]
        for p in sorted(exposure):
            if p in self.overexposed:
                continue  # the case sets it (cases.network)
            if sector[p] == "guarantee":
                # a licensed financing guarantee company works at 3-8x its net assets (the regulator allows 10x)
                net[p] = float(round(exposure[p] / rng.uniform(3.0, 8.0), -3))
            else:
                # guarantees sum to at most ~1.7x net assets: a clean guarantor
                net[p] = float(round(max(net[p], exposure[p] * rng.uniform(0.6, 1.5)), -3))


def build_world(rng: np.random.Generator, n: int, h: Horizon) -> World:
    """The normal bank: one BANK, `n` borrowers (80% firms) and their counterparties and loans."""
    w = World(h, rng)
    bank = w.parties.add(kind="bank", name="Simulated Commercial Bank", sector="banking", region="Shanghai",
                         registered_on=date(1995, 6, 1), legal_rep=None, address="1 Lujiazui Ring Road, Shanghai",
                         phone="95500", net_assets=5e10)
    w.bank = bank
    w.ledger = w.account(bank, "loan_ledger", date(1995, 6, 1))
    w.cash = w.account(bank, "settlement", date(1995, 6, 1))  # the bank's cash account (vault)
    w.acc_of.append(w.ledger)

    firm = np.zeros(n, dtype=bool)
    firm[rng.permutation(n)[: round(0.8 * n)]] = True
    nf, npers = int(firm.sum()), n - int(firm.sum())

    def pool(count, sectors, kind="firm", account="external"):
        return np.array([w.party(kind, str(sectors[rng.integers(len(sectors))]), account=account)
                         for _ in range(count)], dtype=np.int64)

    w.pools = {
        "supplier": pool(max(20, nf // 2), SUPPLIER_SECTORS),
        "customer": pool(max(30, int(0.8 * nf)), CUSTOMER_SECTORS),
        "trader": pool(max(30, n // 10), ("wholesale", "logistics")),
        "merchant": pool(max(20, n // 25), ("retail", "food")),
        "utility": pool(8, ("utilities",)),
        "landlord": pool(max(5, nf // 30), ("real_estate",)),
        "developer": pool(max(3, npers // 15), ("real_estate",), account="escrow"),
        "securities": pool(max(3, n // 250), ("securities",), account="securities"),
        "futures": pool(max(2, n // 500), ("futures",), account="securities"),
        "crypto": pool(max(2, n // 1000), ("crypto",)),
        "lending": pool(max(3, n // 300), ("lending",)),
        "gambling": pool(max(2, n // 1000), ("gambling",)),
        "employer": pool(max(10, npers // 5), CUSTOMER_SECTORS),
        "guarantor_co": pool(max(3, nf // 80), ("guarantee",)),
        "holding": pool(max(3, nf // 60), ("manufacturing", "wholesale")),
        # the counterparties' own business partners, outside the loan book
        "market": pool(max(60, n // 3), SUPPLIER_SECTORS + CUSTOMER_SECTORS),
        "staff": pool(max(20, n // 20), ("household",), kind="person"),  # counterparties' payroll accounts
    }
    w.tax = np.array([w.party("firm", "government", name=f"{r[1]} Tax Bureau", region=i)
                      for i, r in enumerate(REGIONS)], dtype=np.int64)  # one per region
    w.pools["real_estate"] = np.concatenate([w.pools["landlord"], w.pools["developer"]])
    # merchant category codes: retail/food merchants get a shopping or dining code
    retail_mcc = np.array([0, 3, 5, 6, 9, 10, 11], dtype=np.int16)  # 5411 5311 5912 5943 5732 5511 5712
    w.merchant_mcc = np.where(
        np.array([w.parties["sector"][p] == "food" for p in w.pools["merchant"]]),
        np.int16(1), retail_mcc[rng.integers(len(retail_mcc), size=len(w.pools["merchant"]))])

    w.borrower = np.zeros(n, dtype=np.int64)
    w.firm, w.scale = firm, np.exp(rng.normal(0, 0.7, n))
    w.owner = np.full(n, -1)
    w.spouse = np.full(n, -1)
    w.site_of = np.full(n, -1)
    w.loans_of = [[] for _ in range(n)]
    pad = lambda k: np.full((n, k), -1, dtype=np.int64)  # noqa: E731
    w.sup, w.cus, w.pay, w.util = pad(8), pad(12), pad(3), pad(3)
    w.n_sup, w.n_cus, w.n_pay, w.n_util = (np.zeros(n, dtype=np.int64) for _ in range(4))
    w.landlord, w.futures, w.lender, w.securities, w.crypto, w.gambling, w.employer = (np.full(n, -1) for _ in range(7))
    w.sector = [""] * n
    w.region = np.zeros(n, dtype=np.int64)

    sites_for = set(np.nonzero(firm)[0][rng.permutation(nf)[: round(0.9 * nf)]].tolist())
    for b in range(n):
        region = int(rng.integers(len(REGIONS)))
        w.region[b] = region
        if firm[b]:
            sector = str(rng.choice(FIRM_SECTORS, p=FIRM_SECTOR_P))
            owner = w.party("person", "household", region=region)
            p = w.party("firm", sector, account="settlement", region=region, legal_rep=w.legal_rep_of(owner),
                        net_assets=float(round(w.scale[b] * rng.uniform(3e6, 15e6), -3)))
            w.borrower[b], w.owner[b], w.sector[b] = p, owner, sector
            share = float(round(rng.uniform(0.51, 1.0), 2))
            w.relate("ownership", owner, p, None, share=share)
            k = int(rng.integers(3, 9))
            w.sup[b, :k], w.n_sup[b] = rng.choice(w.pools["supplier"], k, replace=False), k
            k = int(rng.integers(4, 13))
            w.cus[b, :k], w.n_cus[b] = rng.choice(w.pools["customer"], k, replace=False), k
            if rng.random() < 0.3 and k < w.cus.shape[1]:  # two-way trade: a supplier that also buys from us
                w.cus[b, k], w.n_cus[b] = rng.choice(w.sup[b, : w.n_sup[b]]), k + 1
            k = int(rng.integers(1, 4))  # a few aggregated payroll accounts keep volume sane
            w.pay[b, :k] = [w.party("person", "household", name=f"{w.parties['name'][p][:-10]} staff payroll {i + 1}",
                                    region=region) for i in range(k)]
            w.n_pay[b] = k
            k = int(rng.integers(2, 4))
            w.util[b, :k], w.n_util[b] = rng.choice(w.pools["utility"], k, replace=False), k
            if rng.random() < 0.6:
                w.landlord[b] = rng.choice(w.pools["landlord"])
            if sector in ("agriculture", "food") and rng.random() < 0.4:
                w.futures[b] = rng.choice(w.pools["futures"])  # hedging: legitimate, from own money
            if rng.random() < 0.05:
                w.lender[b] = rng.choice(w.pools["lending"])
            for x in np.unique(np.concatenate([w.sup[b, : w.n_sup[b]], w.cus[b, : w.n_cus[b]]])):
                w.relate("supply_chain", p, int(x), None)
            if b in sites_for:
                hc = int(np.clip(40 * w.scale[b] * rng.uniform(0.5, 2.0), 12, 1500))
                unit = UNITS[sector]
                q = float(round(w.scale[b] * rng.uniform(300, 3000) * (100 if unit == "pcs" else 1), -1))
                w.site_of[b] = w.sites.add(borrower=p, unit=unit, pledged=q, headcount=hc,
                                           kwh_per_head=float(rng.uniform(15, 60)))
            _firm_loans(w, b)
        else:
            p = w.party("person", "household", account="settlement", region=region,
                        net_assets=float(round(rng.uniform(2e5, 3e6), -3)))
            spouse = w.party("person", "household", region=region)
            w.borrower[b], w.spouse[b], w.sector[b] = p, spouse, "household"
            w.relate("family", spouse, p, None)
            w.employer[b] = rng.choice(w.pools["employer"])
            k = int(rng.integers(1, 3))
            w.util[b, :k], w.n_util[b] = rng.choice(w.pools["utility"], k, replace=False), k
            if rng.random() < 0.35:
                w.securities[b] = rng.choice(w.pools["securities"])
            if rng.random() < 0.03:
                w.crypto[b] = rng.choice(w.pools["crypto"])
            if rng.random() < 0.05:
                w.gambling[b] = rng.choice(w.pools["gambling"])  # lottery
            _person_loan(w, b)
    w.index_of = {int(p): b for b, p in enumerate(w.borrower)}  # borrower party -> borrower index
    _declared_noise(w)
    _family_groups(w)
    _shared_identifiers(w)
    _normal_guarantees(w)
    _counterparty_profiles(w)
    w.active = np.ones((n, h.days), dtype=bool)  # False: the business is shut (no settlement traffic)
    w.activity = _activity(w)  # business intensity by day: holidays, Spring Festival shutdowns, seasons
    w.repay_skip: dict[int, int] = {}  # loan -> index of the first instalment that never comes
    return w


def _disbursement_day(w: World) -> int:
    return int(w.rng.integers(3, max(4, w.h.days // 3 + 1)))


def _firm_loans(w: World, b: int) -> None:
    rng = w.rng
    for i in range(2 if rng.random() < 0.15 else 1):
        purpose = str(rng.choice(("working_capital", "fixed_asset", "trade_finance"), p=(0.55, 0.2, 0.25)))
        principal = float(np.clip(round(2.5e6 * w.scale[b] * rng.lognormal(0, 0.5), -4), 2e5, 2e7))
        k = int(rng.integers(1, min(3, w.n_sup[b] - 1) + 1))  # keep a regular supplier outside the contract
        payees = [int(x) for x in rng.choice(w.sup[b, : w.n_sup[b]], k, replace=False)]
        site = w.site_of[b]
        if i == 0 and site >= 0:
            collateral = [{"kind": "inventory", "site": site, "pledged_quantity": w.sites["pledged"][site],
                           "unit": w.sites["unit"][site]}]
        else:
            collateral = [{"kind": str(rng.choice(("equipment", "receivables")))}]
        w.add_loan(b, purpose, principal, _disbursement_day(w), payees, collateral)


def _person_loan(w: World, b: int) -> None:
    rng = w.rng
    if rng.random() < 0.6:  # consumer loan paid to a retail merchant (car, furniture, renovation)
        retail = [int(m) for m in w.pools["merchant"] if w.parties["sector"][m] == "retail"]
        retail = retail or [int(m) for m in w.pools["merchant"]]
        w.add_loan(b, "consumer", float(round(rng.uniform(2e5, 1e6), -4)), _disbursement_day(w),
                   [int(rng.choice(retail))], [])
    else:  # mortgage paid to the developer's escrow account: real estate is this loan's purpose
        w.add_loan(b, "mortgage", float(round(rng.uniform(5e5, 5e6), -4)), _disbursement_day(w),
                   [int(rng.choice(w.pools["developer"]))], [{"kind": "property"}])


def _declared_noise(w: World) -> None:
    """Declared related parties that look like hidden ones: group firms sharing a legal rep or address."""
    rng, firms = w.rng, np.nonzero(w.firm)[0]
    w.declared_shared: set[int] = set()
    order = rng.permutation(firms)
    for i in range(0, 2 * max(1, len(firms) // 40), 2):
        if i + 1 >= len(order):
            break
        b1, b2 = int(order[i]), int(order[i + 1])
        p1, p2 = w.borrower[b1], w.borrower[b2]
        holding = int(rng.choice(w.pools["holding"]))
        for p in (p1, p2):
            w.relate("control", holding, p, None)
        if rng.random() < 0.6:
            w.parties["legal_rep"][p2] = w.parties["legal_rep"][p1]
            w.relate("shared_legal_rep", p1, p2, None)
        else:
            w.parties["address"][p2] = w.parties["address"][p1]
            w.relate("shared_address", p1, p2, None)
        w.declared_shared.update((b1, b2))
    for b in order[2 * max(1, len(firms) // 40):][: max(1, len(firms) // 20)]:
        w.relate("shared_director", w.borrower[b], int(rng.choice(w.cus[b, : w.n_cus[b]])), None)


def _family_groups(w: World) -> None:
    """Family businesses: 2-3 borrower firms of one family (about 3% of firms), declared as the bank
    records them: the owners are family of a family head who controls every firm. Their firms share
    the family's phone or are registered at one address."""
    rng, firms = w.rng, np.nonzero(w.firm)[0]
    w.family_firms: set[int] = set()
    free = [int(b) for b in rng.permutation(firms) if int(b) not in w.declared_shared]
    for _ in range(max(1, len(firms) // 80)):
        size = int(rng.integers(2, 4))
        if len(free) < size:
            break
        group, free = free[:size], free[size:]
        oldest = min(w.parties["registered_on"][w.borrower[b]] for b in group)
        head = w.party("person", "household", region=int(w.region[group[0]]),
                       registered=oldest - timedelta(days=int(rng.integers(3000, 9000))))
        field = "phone" if rng.random() < 0.5 else "address"
        value = w.parties[field][w.borrower[group[0]]]
        for b in group:
            p = int(w.borrower[b])
            w.relate("family", head, int(w.owner[b]), None)
            w.relate("control", head, p, None)
            w.parties[field][p] = value
        w.family_firms.update(group)


def _shared_identifiers(w: World) -> None:
    """Business-centre addresses and registration agents' phones: a small firm (a borrower of below
    median size, or any counterparty firm of the pools) is registered at one of its city's business
    centres with probability 0.2 and gives an agent's phone with probability 0.15. Unrelated firms
    share these by the dozen; a hidden relation is a handful of parties."""
    rng = w.rng
    P = w.parties
    small = set(int(w.borrower[b]) for b in np.nonzero(w.firm & (w.scale < 1.0))[0]
                if b not in w.declared_shared and b not in w.family_firms)
    for name in ("supplier", "customer", "trader", "market"):
        small.update(int(p) for p in w.pools[name])
    n_centres = max(1, round(len(small) * 0.2 / len(REGIONS) / 25))  # per region: about 25 firms each
    centres = {r[0]: [f"Room 1801, {_mix(900 + 10 * i + j)} {STREETS[(i + j) % len(STREETS)]} Road Business Centre, "
                      f"{r[1]}" for j in range(n_centres)] for i, r in enumerate(REGIONS)}
    agents = {r[0]: [f"1{8 + j % 2}{_mix(50_000 + 10 * i + j, 999_999_937):09d}" for j in range(n_centres)]
              for i, r in enumerate(REGIONS)}
    w.centre_firms: set[int] = set()
    for p in sorted(small):
        region = P["region"][p]
        if rng.random() < 0.2:
            P["address"][p] = centres[region][int(rng.integers(n_centres))]
            w.centre_firms.add(p)
        if rng.random() < 0.15:
            P["phone"][p] = agents[region][int(rng.integers(n_centres))]
            w.centre_firms.add(p)


def _counterparty_profiles(w: World) -> None:
    """Suppliers, customers and traders have businesses of their own (normal.counterparties): a size,
    a landlord, investments and loans elsewhere."""
    rng = w.rng
    cps = np.concatenate([w.pools["supplier"], w.pools["customer"], w.pools["trader"]])
    kind = np.concatenate([np.full(len(w.pools["supplier"]), 0), np.full(len(w.pools["customer"]), 1),
                           np.full(len(w.pools["trader"]), 2)])
    sector = [w.parties["sector"][p] for p in cps]

    def some(pool: str, p: float, among=None) -> np.ndarray:
        pick = rng.choice(w.pools[pool], len(cps))
        ok = rng.random(len(cps)) < p
        if among is not None:
            ok &= among
        return np.where(ok, pick, -1)

    w.cp = {
        "party": cps, "kind": kind,
        "scale": np.exp(rng.normal(0.3, 0.8, len(cps))),
        "region": np.array([[r[0] for r in REGIONS].index(w.parties["region"][p]) for p in cps]),
        "landlord": some("landlord", 0.6),
        "securities": some("securities", 0.08),
        "futures": some("futures", 0.3, np.isin(sector, SEASONAL)),
        "lender": some("lending", 0.05),
    }


def _activity(w: World) -> np.ndarray:
    """Business intensity of every borrower by day (multiplies the rates of its payments).

    Official days off: offices and factories 0.1, shops 1.0. Spring Festival: a
    factory closes 1-5 days before the days off and reopens 2-10 days after them,
    at 0.1, easing over three days either side; shops stay open. Seasonal sectors
    follow an annual cycle of +-25% with a phase of their own. Persons: 1.0. The
    sensors of a site follow its borrower's activity (sensors.py)."""
    h, rng, n = w.h, w.rng, len(w.borrower)
    act = np.ones((n, h.days))
    days = np.arange(h.days)
    shop = np.isin(w.sector, SHOPS)
    for b in np.nonzero(w.firm)[0]:
        if not shop[b]:
            act[b, h.holiday] = 0.1
            for first, last in h.spring_festivals():
                lo = first - int(rng.integers(*SPRING_BEFORE, endpoint=True))
                hi = last + int(rng.integers(*SPRING_AFTER, endpoint=True))
                closed = np.clip(np.minimum(days - (lo - 3), (hi + 3) - days) / 3.0, 0.0, 1.0)  # 1 from lo to hi
                act[b] = np.minimum(act[b], 1.0 - 0.9 * closed)
        if w.sector[b] in SEASONAL:
            doy = np.array([d.timetuple().tm_yday for d in h.dates])
            act[b] *= 1.0 + 0.25 * np.sin(2 * np.pi * (doy / 365.0 - rng.random()))
    return act


def _normal_guarantees(w: World) -> None:
    """Guarantees that form no cycle and no chain longer than two edges.

    Firms fall in four classes: `free` (no guarantees at all: the anchors of the
    injected circles and chains come from here), `G` (guarantees one to three `H`
    firms, itself guaranteed only by people or guarantee companies), `H`, and the
    rest (owner and/or guarantee company).  Persons: the spouse, half the time.
    """
    rng, n = w.rng, len(w.borrower)
    firms = rng.permutation(np.nonzero(w.firm)[0])
    nf = len(firms)
    w.g_class = np.full(n, "", dtype=object)
    cut = [round(0.25 * nf), round(0.35 * nf), round(0.50 * nf)]
    w.g_class[firms[: cut[0]]] = "free"
    w.g_class[firms[cut[0]: cut[1]]] = "G"
    w.g_class[firms[cut[1]: cut[2]]] = "H"
    w.g_class[firms[cut[2]:]] = "pure"
    g_firms = firms[cut[0]: cut[1]]
    for b in range(n):
        for loan in w.loans_of[b]:
            if not w.firm[b]:
                if rng.random() < 0.5:
                    w.guarantee(int(w.spouse[b]), loan)
                continue
            if w.g_class[b] == "free":
                continue
            added = False
            if rng.random() < 0.75:
                w.guarantee(int(w.owner[b]), loan)
                added = True
            if rng.random() < 0.35 or not added:
                w.guarantee(int(rng.choice(w.pools["guarantor_co"])), loan)
            if w.g_class[b] == "H" and len(g_firms):
                w.guarantee(int(w.borrower[rng.choice(g_firms)]), loan)
