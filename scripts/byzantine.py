#!/usr/bin/env python3
"""Byzantine analysis of Shoal's JobMarket: P(a wrong result is verified) and the attacker's
expected profit per job, exact (combinatorial) and Monte Carlo.

    python3 scripts/byzantine.py                 # tables (docs/protocol.md, "Byzantine analysis")
    python3 scripts/byzantine.py --json          # the same as JSON
    python3 scripts/byzantine.py --sweep         # exact P / EV of design (B) over n, mediators, collateral
    python3 scripts/byzantine.py --check         # Monte Carlo vs exact within 3 standard errors

Standard library only; deterministic (--seed, --trials).

Model (see docs/protocol.md for the discussion):
  * `pool` eligible operators with equal stake; the attacker controls A = round(f * pool) of
    them (f = its stake share; with equal stakes also its share of identities). Everyone else
    is honest and returns the correct result; every attacker operator on the job returns the
    same wrong result. Everyone commits and reveals in time. Price = maxPrice (= 1 unit),
    collateral = `c` units; escrow E = n units. Mediation (`escalate`) is on.
  * Selection
      A-worst  today's contract, attacker controls block timing: its min(A, m) bids land first
               (it watches JobPosted and front-runs / builds the block). With m == n the first n
               bids win outright (`_pickWinners` does not shuffle when count == n). With m > n
               the n winners are a Fisher-Yates draw from the m bids, and the attacker picks the
               block (prevrandao is known one block ahead) out of `grind` candidates: it keeps
               the draw with the most attacker winners. The mediator draw (seeded by the block
               of the last reveal, which the attacker can hold back) is ground the same way.
      A-avg    today's contract, bids arrive in random order: the first m of all bidders, then n
               of those m at random; one prevrandao draw each for selection and mediators.
      B        proposed fix: n drawn uniformly (unpredictable randomness) from all bids received
               in the bid window (m > n is only the floor), mediators drawn uniformly from the
               eligible operators weighted by stake (equal stakes here, so weights are uniform).
    All attacker identities bid; a fraction `honest_bid_rate` of the honest operators bid.
  * Mediators: `mediators` drawn from the eligible pool minus the job's n deals. Attacker
    mediators know the draw (MediatorSelected events) before committing and act rationally:
    they vote the wrong result when the attacker holds at least half of them (a strict majority
    decides the dispute for the attacker, an exact half makes it fail with no majority), and
    vote the truth otherwise (earning the fee instead of being slashed).
  * Money (JobMarket._finish): correct originals are paid their price; every wrong, unrevealed
    or uncommitted participant is slashed `c`; the pot (slashed collateral) pays the agreeing
    mediators min(price, pot / agreeing) each, the rest goes in equal shares to the originals
    whose result was accepted; the rest is burned. Never to the creator.
  * Attacker profit per job = V * [wrong result verified] + payments received - collateral
    slashed (execution costs and capital costs of stake are ignored).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass

MEDIATOR_SCAN = 64  # JobMarket.MEDIATOR_SCAN
V_MULTIPLES = (0, 10, 100)  # V in units of the job's escrow
FRACTIONS = (0.10, 0.49)
TARGET_P = 1e-3


@dataclass(frozen=True)
class Params:
    name: str
    n: int  # concurrency
    k: int  # confidence
    m: int  # min bids
    mediators: int  # deployment's mediatorCount
    collateral: float  # per deal, in units of maxPrice

    def label(self) -> str:
        return f"n={self.n} k={self.k} m={self.m} med={self.mediators} c={self.collateral:g}p"


# The CLI / spec defaults before the draw fix: node/types/src/spec.rs (concurrency 3, confidence 2,
# min_bids = n then; 2n now, see DEFAULTS_B),
# max_price = collateral = 10^15 wei, mediation on); contracts/script/Deploy.s.sol (3 mediators).
DEFAULTS = Params("defaults", n=3, k=2, m=3, mediators=3, collateral=1.0)
# Design (B), the contract and defaults now (min_bids = 2n); with every operator bidding m does
# not enter the figures.
DEFAULTS_B = Params("defaults", n=3, k=2, m=6, mediators=3, collateral=1.0)
# Design (B) with the default job parameters and a deployment with mediatorCount = 9.
DEFAULTS_MED9 = Params("defaults+9med", n=3, k=2, m=3, mediators=9, collateral=1.0)
DEFAULTS_MED9_B = Params("defaults+9med", n=3, k=2, m=6, mediators=9, collateral=1.0)
# Recommended for high-value jobs (see --sweep and docs/protocol.md): 9 mediators (a deployment
# parameter today), collateral at the deployment's cap (maxCollateralFactor = 20).
HIGH_VALUE = Params("high-value", n=5, k=4, m=9, mediators=9, collateral=20.0)

SCENARIOS = ("A-worst", "A-avg", "B")


@dataclass(frozen=True)
class World:
    pool: int
    attackers: int
    honest_bidders: int
    grind: int

    @property
    def honest(self) -> int:
        return self.pool - self.attackers


def make_world(pool: int, f: float, grind: int, honest_bid_rate: float) -> World:
    a = int(round(f * pool))
    return World(pool, a, int(round(honest_bid_rate * (pool - a))), grind)


# =============================================================================================
# exact
# =============================================================================================


def hyper_pmf(total: int, good: int, draws: int) -> dict[int, float]:
    """Number of good items in `draws` drawn without replacement from `total`."""
    denom = math.comb(total, draws)
    out = {}
    for x in range(max(0, draws - (total - good)), min(good, draws) + 1):
        out[x] = math.comb(good, x) * math.comb(total - good, draws - x) / denom
    return out


def max_pmf(pmf: dict[int, float], g: int) -> dict[int, float]:
    """Distribution of the maximum of g independent draws (the attacker grinding g blocks)."""
    if g == 1:
        return pmf
    out, cdf, prev = {}, 0.0, 0.0
    for x in sorted(pmf):
        cdf += pmf[x]
        cur = min(cdf, 1.0) ** g
        out[x] = cur - prev
        prev = cur
    return out


def selection_pmf(scn: str, p: Params, w: World) -> dict[int, float]:
    """Distribution of j, the attacker's deals among the n selected."""
    if scn == "A-worst":
        first = min(w.attackers, p.m)  # the attacker's bids land first
        if p.m == p.n:
            return {min(first, p.n): 1.0}
        return max_pmf(hyper_pmf(p.m, first, p.n), w.grind)
    bidders = w.attackers + w.honest_bidders
    if bidders < p.m:
        raise ValueError(f"only {bidders} bidders for min_bids {p.m}")
    # A-avg: the first m of a random order, then n of those m at random = n of all at random.
    # B: n of all bids at random.
    return hyper_pmf(bidders, w.attackers, p.n)


def mediator_pmf(scn: str, p: Params, w: World, j: int) -> dict[int, float] | None:
    """Distribution of the attacker's mediators given j attacker deals; None = cannot staff."""
    total = w.pool - p.n
    if total < p.mediators:
        return None
    pmf = hyper_pmf(total, w.attackers - j, p.mediators)
    return max_pmf(pmf, w.grind) if scn == "A-worst" else pmf


def payoff(p: Params, j: int, a: int | None, v: float) -> tuple[float, bool]:
    """Closed form of the attacker's profit (units of maxPrice) and whether the wrong result is
    verified, for j attacker deals and a attacker mediators (None: no mediation)."""
    n, big_m, c = p.n, p.mediators, p.collateral
    if j == 0:
        return 0.0, False
    if j == n:
        return v + n, True  # unanimous wrong result: tally verifies it, every deal paid
    if a is None:
        return 0.0, False  # escalated disagreement, no mediators: fail safe, revealers unlocked
    if 2 * a > big_m:
        # wrong result is the truth: j paid; honest deals and honest mediators slashed; the whole
        # pot goes to the attacker's mediators (fees) and deals (compensation)
        return v + j + (n - j + big_m - a) * c, True
    if 2 * a == big_m:
        return 0.0, False  # no mediator majority: job fails, revealers unlocked
    # truth wins; attacker's deals slashed; its mediators vote the truth and take their fee share
    return -j * c + a * min(1.0, j * c / big_m), False


def exact(scn: str, p: Params, w: World) -> dict:
    p_wrong = 0.0
    ev = {m: 0.0 for m in V_MULTIPLES}
    for j, pj in selection_pmf(scn, p, w).items():
        if pj == 0.0:
            continue
        if 0 < j < p.n:
            meds = mediator_pmf(scn, p, w, j)
            branches = [(None, 1.0)] if meds is None else list(meds.items())
        else:
            branches = [(None, 1.0)]
        for a, pa in branches:
            for mult in V_MULTIPLES:
                gain, wrong = payoff(p, j, a, mult * p.n)
                ev[mult] += pj * pa * gain
            if payoff(p, j, a, 0.0)[1]:
                p_wrong += pj * pa
    ev = {m: ev[m] / p.n for m in V_MULTIPLES}  # EV in escrows
    # EV is linear in V with slope P(wrong): the value V* (in escrows) above which attacking pays
    breakeven = 0.0 if ev[0] >= 0 else (None if p_wrong == 0 else -ev[0] / p_wrong)  # None: never
    return {"p_wrong": p_wrong, "ev": ev, "breakeven_v": breakeven}


# =============================================================================================
# Monte Carlo: a literal replay of bid order, _pickWinners, _drawMediators and _finish
# =============================================================================================


def pick_winners(rng: random.Random, bids: list[bool], n: int) -> list[bool]:
    """_pickWinners on the m bids that triggered selection (all lockable)."""
    arr = list(bids)
    if len(arr) > n:
        for i in range(n):
            j = i + rng.randrange(len(arr) - i)
            arr[i], arr[j] = arr[j], arr[i]
    return arr[:n]


def draw_mediators(rng: random.Random, w: World, deal_ids: set[int], count: int) -> list[int] | None:
    """_drawMediators over the eligible pool 0..pool-1 (ids < attackers are the attacker's)."""
    picked: list[int] = []
    if w.pool <= MEDIATOR_SCAN:
        for op in rng.sample(range(w.pool), w.pool):
            if op not in deal_ids:
                picked.append(op)
                if len(picked) == count:
                    return picked
        return None
    for _ in range(MEDIATOR_SCAN):
        op = rng.randrange(w.pool)
        if op in deal_ids or op in picked:
            continue
        picked.append(op)
        if len(picked) == count:
            return picked
    return None


def settle(p: Params, deals: list[bool], meds: list[bool] | None, disputed: bool) -> tuple[float, bool]:
    """JobMarket tally / dispute resolution / _finish from the attacker's side (V excluded)."""
    c = p.collateral
    hashes = ["W" if att else "T" for att in deals]
    med_hashes: list[str] = []
    if disputed:
        if meds is None:
            return 0.0, False  # NoMediators: fail safe
        a = sum(meds)
        vote_wrong = 2 * a >= len(meds)  # rational colluding mediators
        med_hashes = ["W" if (att and vote_wrong) else "T" for att in meds]
        best, cnt = Counter(med_hashes).most_common(1)[0]
        if cnt * 2 <= len(meds):
            return 0.0, False  # no mediator majority: Judge.None, revealers unlocked
        truth = best
    else:
        counts = Counter(hashes).most_common()
        if counts[0][1] < p.k or (len(counts) > 1 and counts[1][1] == counts[0][1]):
            return 0.0, False
        truth = counts[0][0]
    gain, pot = 0.0, 0.0
    correct_orig: list[bool] = []
    correct_meds: list[bool] = []
    for att, h in zip(deals, hashes):
        if h == truth:
            gain += 1.0 if att else 0.0  # paid its price (= maxPrice)
            correct_orig.append(att)
        else:
            pot += c
            gain -= c if att else 0.0
    for att, h in zip(meds or [], med_hashes):
        if h == truth:
            correct_meds.append(att)
        else:
            pot += c
            gain -= c if att else 0.0
    if correct_meds:
        share = min(1.0, pot / len(correct_meds))
        for att in correct_meds:
            gain += share if att else 0.0
            pot -= share
    if pot > 0 and correct_orig:
        share = pot / len(correct_orig)
        for att in correct_orig:
            gain += share if att else 0.0
    verified = bool(correct_orig)
    return gain, verified and truth == "W"


def one_job(rng: random.Random, scn: str, p: Params, w: World) -> tuple[float, bool]:
    # bidders: ids 0..A-1 attacker, A..A+Hb-1 honest
    bidders = w.attackers + w.honest_bidders
    if scn == "A-worst":
        first = min(w.attackers, p.m)
        order = list(range(first)) + list(range(w.attackers, w.attackers + p.m - first))
        tries = 1 if p.m == p.n else w.grind
    else:
        # A-avg: random arrival order, the first m trigger selection; B: all bids in the window
        order = rng.sample(range(bidders), p.m) if scn == "A-avg" else list(range(bidders))
        tries = 1
    best_deals = None
    for _ in range(tries):
        ids = pick_winners(rng, order, p.n)  # works on ids as well as on flags
        if best_deals is None or sum(i < w.attackers for i in ids) > sum(i < w.attackers for i in best_deals):
            best_deals = ids
    deal_ids = set(best_deals)
    deals = [i < w.attackers for i in best_deals]
    j = sum(deals)
    disputed = 0 < j < p.n  # escalate: any disagreement opens mediation
    meds_flags = None
    if disputed:
        best = None
        for _ in range(w.grind if scn == "A-worst" else 1):
            drawn = draw_mediators(rng, w, deal_ids, p.mediators)
            if drawn is None:
                continue
            flags = [i < w.attackers for i in drawn]
            if best is None or sum(flags) > sum(best):
                best = flags
        meds_flags = best
    return settle(p, deals, meds_flags, disputed)


def monte_carlo(scn: str, p: Params, w: World, trials: int, seed: int) -> dict:
    rng = random.Random(seed)
    wrong_count = 0
    s = {m: 0.0 for m in V_MULTIPLES}
    s2 = {m: 0.0 for m in V_MULTIPLES}
    for _ in range(trials):
        gain, wrong = one_job(rng, scn, p, w)
        wrong_count += wrong
        for mult in V_MULTIPLES:
            x = (gain + (mult * p.n if wrong else 0.0)) / p.n
            s[mult] += x
            s2[mult] += x * x
    pw = wrong_count / trials
    ev, ev_se = {}, {}
    for mult in V_MULTIPLES:
        mean = s[mult] / trials
        var = max(s2[mult] / trials - mean * mean, 0.0)
        ev[mult] = mean
        ev_se[mult] = math.sqrt(var / trials)
    return {
        "p_wrong": pw,
        "p_wrong_se": math.sqrt(pw * (1 - pw) / trials),
        "ev": ev,
        "ev_se": ev_se,
        "trials": trials,
    }


# =============================================================================================
# driver
# =============================================================================================


def cases():
    for scn in SCENARIOS:
        sets = (DEFAULTS_B, DEFAULTS_MED9_B, HIGH_VALUE) if scn == "B" else (DEFAULTS, DEFAULTS_MED9, HIGH_VALUE)
        for p in sets:
            for f in FRACTIONS:
                yield scn, p, f


def case_seed(seed: int, idx: int) -> int:
    return seed * 1_000_003 + idx


def run(args) -> list[dict]:
    rows = []
    for idx, (scn, p, f) in enumerate(cases()):
        w = make_world(args.pool, f, args.grind, args.honest_bid_rate)
        ex = exact(scn, p, w)
        mc = monte_carlo(scn, p, w, args.trials, case_seed(args.seed, idx)) if args.trials else None
        rows.append({"scenario": scn, "params": asdict(p), "f": f, "world": asdict(w), "exact": ex, "mc": mc})
    return rows


def fmt_p(x: float) -> str:
    if x == 0:
        return "0"
    if x >= 0.01:
        return f"{100 * x:.1f}%"
    return f"{100 * x:.3f}%"


def fmt_v(x: float | None) -> str:
    if x is None:
        return "never"
    if x == 0:
        return "0"
    return f"{x:.0f}E" if x >= 10 else f"{x:.1f}E"


def print_table(rows: list[dict], args) -> None:
    print(
        f"pool {args.pool} eligible operators (equal stake), grind {args.grind} blocks (A-worst), "
        f"honest bid rate {args.honest_bid_rate:g}, {args.trials} trials/case, seed {args.seed}"
    )
    print("EV = attacker's expected profit per job, in escrows (E = n x maxPrice); price = maxPrice = p;")
    print("V* = value of a wrong result (in escrows) above which the attack pays (EV = EV(V=0) + P(wrong) x V)")
    print()
    head = (
        f"{'scenario':8} {'parameters':32} {'f':>4} {'P(wrong) exact':>14} {'P(wrong) MC +- se':>20} "
        f"{'EV V=0':>8} {'EV V=10E':>9} {'EV V=100E':>10} {'V*':>8}  {'MC EV V=100E +- se':>19}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        p = Params(**r["params"])
        ex, mc = r["exact"], r["mc"]
        mcp = f"{fmt_p(mc['p_wrong'])} +- {fmt_p(mc['p_wrong_se'])}" if mc else "-"
        mce = f"{mc['ev'][100]:.3f} +- {mc['ev_se'][100]:.3f}" if mc else "-"
        print(
            f"{r['scenario']:8} {p.label():32} {int(round(r['f'] * 100)):>3}% {fmt_p(ex['p_wrong']):>14} "
            f"{mcp:>20} {ex['ev'][0]:>8.3f} {ex['ev'][10]:>9.3f} {ex['ev'][100]:>10.3f} {fmt_v(ex['breakeven_v']):>8}  {mce:>19}"
        )
    print()
    print(f"Target: P(wrong) <= {fmt_p(TARGET_P)} and EV < 0 at f = 10 % with the defaults, even with block timing control")
    print("(A-avg assumes no timing control, so it cannot meet the target for today's contract on its own)")
    verdict = {}
    for r in rows:
        if r["f"] != 0.10:
            continue
        ex = r["exact"]
        p_ok = ex["p_wrong"] <= TARGET_P
        ev_ok = [m for m in V_MULTIPLES if ex["ev"][m] < 0]
        ev_txt = "EV < 0 for V in {" + ", ".join(f"{m}E" for m in ev_ok) + "}" if ev_ok else "EV >= 0 for every V"
        met = p_ok and len(ev_ok) == len(V_MULTIPLES)
        print(
            f"  {r['scenario']:8} {r['params']['name']:14}: P(wrong) {'met' if p_ok else 'MISSED':6} "
            f"({fmt_p(ex['p_wrong'])}); {ev_txt}{' -> target met' if met else ''}"
        )
        verdict.setdefault(r["scenario"], {})[r["params"]["name"]] = met
    today = verdict.get("A-worst", {}).get("defaults", False)
    print(f"Today's contract (A), defaults, attacker controls timing: target {'met' if today else 'MISSED'}.")
    for name, met in verdict.get("B", {}).items():
        print(f"Design B, {name}: target {'met' if met else 'MISSED'}.")


def sweep(args) -> list[dict]:
    out = []
    for f in (0.10, 0.20, 0.33, 0.49):
        w = make_world(args.pool, f, args.grind, args.honest_bid_rate)
        for n, k in ((3, 2), (5, 4), (7, 5)):
            for med in (3, 5, 7, 9, 11, 15):
                for c in (1.0, 20.0):
                    p = Params("sweep", n, k, 2 * n - 1, med, c)
                    ex = exact("B", p, w)
                    out.append({"f": f, "n": n, "k": k, "mediators": med, "collateral": c, **ex})
    return out


def print_sweep(rows: list[dict]) -> None:
    print("design B, exact: P(wrong) and EV (escrows) for V = 0 / 10E / 100E")
    print(f"{'f':>4} {'n':>2} {'med':>3} {'c':>4} {'P(wrong)':>9} {'EV 0':>8} {'EV 10E':>8} {'EV 100E':>8} {'V*':>8}")
    for r in rows:
        print(
            f"{int(round(r['f'] * 100)):>3}% {r['n']:>2} {r['mediators']:>3} {r['collateral']:>4g} "
            f"{fmt_p(r['p_wrong']):>9} {r['ev'][0]:>8.3f} {r['ev'][10]:>8.3f} {r['ev'][100]:>8.3f} {fmt_v(r['breakeven_v']):>8}"
        )


def check(args) -> int:
    """Monte Carlo vs exact within 3 standard errors, on cases that exercise every branch."""
    trials = args.trials if args.trials_given else 20_000
    checks = [
        ("A-avg", DEFAULTS, 100, 0.49, 10),  # mediation, wins and losses
        ("B", HIGH_VALUE, 100, 0.30, 10),  # >64 pool: independent mediator draws
        ("B", Params("even", 3, 2, 6, 4, 5.0), 40, 0.30, 10),  # even mediators: ties, pool <= 64
        ("A-worst", DEFAULTS, 20, 0.10, 10),  # 2 attacker deals outright, no attacker left to mediate
        ("A-worst", Params("grind", 3, 2, 8, 3, 2.0), 50, 0.10, 3),  # ground selection and mediators
        ("A-worst", Params("grind", 3, 2, 8, 3, 2.0), 100, 0.06, 4),  # the same, >64 pool
        ("A-worst", HIGH_VALUE, 100, 0.10, 10),  # full capture (P = 1)
    ]
    failed = 0
    for idx, (scn, p, pool, f, grind) in enumerate(checks):
        w = make_world(pool, f, grind, 1.0)
        ex = exact(scn, p, w)
        mc = monte_carlo(scn, p, w, trials, case_seed(args.seed, 1000 + idx))
        pairs = [("P(wrong)", ex["p_wrong"], mc["p_wrong"], mc["p_wrong_se"])]
        pairs += [(f"EV V={m}E", ex["ev"][m], mc["ev"][m], mc["ev_se"][m]) for m in V_MULTIPLES]
        for what, e, m, se in pairs:
            ok = abs(e - m) <= 3 * se if se > 0 else abs(e - m) <= 1e-9
            failed += not ok
            print(
                f"{'ok  ' if ok else 'FAIL'} {scn:8} {p.label():32} pool={pool:<3} f={f:<4} "
                f"{what:10} exact {e:+.5f}  mc {m:+.5f} +- {se:.5f}"
            )
    print(f"{len(checks) * (1 + len(V_MULTIPLES)) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=None, help="Monte Carlo trials per case (default 100000; 0 = exact only)")
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--pool", type=int, default=100, help="eligible operators (equal stake)")
    ap.add_argument("--grind", type=int, default=10, help="blocks the attacker can choose from (A-worst)")
    ap.add_argument("--honest-bid-rate", type=float, default=1.0, help="fraction of honest operators that bid")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="exact sweep of design B over n, mediators, collateral")
    ap.add_argument("--check", action="store_true", help="assert Monte Carlo == exact within 3 se")
    args = ap.parse_args(argv)
    args.trials_given = args.trials is not None
    if args.trials is None:
        args.trials = 100_000
    if args.grind < 1 or args.pool < 1 or not 0 < args.honest_bid_rate <= 1:
        ap.error("--grind and --pool must be >= 1, --honest-bid-rate in (0, 1]")
    if args.check:
        return check(args)
    if args.sweep:
        rows = sweep(args)
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            print_sweep(rows)
        return 0
    rows = run(args)
    if args.json:
        print(json.dumps({"settings": {k: getattr(args, k) for k in ("trials", "seed", "pool", "grind", "honest_bid_rate")},
                          "rows": rows}, indent=1))
    else:
        print_table(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
