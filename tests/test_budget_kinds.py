"""Money and energy budgets (issue 28, deliverable 5): the budget's unit picks the cost model, money at the user's
price, energy from a profile's NVML energy block, and the NVML meter that measures it (no GPU needed)."""

from __future__ import annotations

import json
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.costs import as_latency_budget, budget_cost_model, cost_model
from ldmpick.costs.energy import NO_ENERGY
from ldmpick.costs.money import MODEL as MONEY
from ldmpick.costs.money import fmt_dollars, parse_price
from ldmpick.files.errors import UsageError
from ldmpick.hardware import energy as meter

from test_selector import H100_GRAPH, make_profile

runner = CliRunner()
PRICE = 2.49  # dollars per device-hour, as a user would give it
# joules per part of each model of H100_GRAPH, as NVML would have measured them (the profile schema's energy block)
ENERGY = {"ldm-39m": 0.9, "ldm-866m": 2.5, "ldm-2b": 4.5, "ldm-5b": 9.0}
TE_J, VAE_J, SAMPLER_J = 1.2, 3.0, 0.01


def one_line_error(r, exit_code: int = 2) -> str:
    assert r.exit_code == exit_code, r.output
    assert "Traceback" not in r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def recommend_json(*args: str, env: dict[str, str] | None = None) -> dict:
    r = runner.invoke(app, ["recommend", *args, "--json"], env=env)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# ---------------------------------------------------------------------------------------------- money


def test_a_money_budget_picks_what_the_latency_it_buys_picks():
    money = recommend_json("--budget", "$0.002", "--price", f"{PRICE}/h")
    seconds = 0.002 / PRICE * 3600
    latency = recommend_json("--budget", f"{seconds!r}s")
    pick = lambda doc: (doc["best"]["model"], doc["best"]["sampler"], doc["best"]["steps"])  # noqa: E731
    assert pick(money) == pick(latency)
    assert money["cost_model"] == "money" and money["unit"] == "USD" and money["budget"] == pytest.approx(0.002)
    best = money["best"]
    assert best["latency"] <= 0.002
    assert best["latency"] == pytest.approx(latency["best"]["latency"] * PRICE / 3600, abs=1e-6)
    assert best["parts"]["seconds"] == pytest.approx(latency["best"]["latency"], abs=1e-5)
    assert best["parts"]["text_encoder"] + best["parts"]["denoise"] + best["parts"]["vae_decode"] == \
        pytest.approx(best["latency"], abs=1e-5)
    # the spread is the latency's: the same chance of running over
    assert best["over_budget_chance"] == latency["best"]["over_budget_chance"]
    assert money["inputs"]["price"] == {"usd_per_hour": PRICE, "source": "--price", "given": f"{PRICE}/h",
                                        "text": f"$2.49 per device-hour (--price)"}


def test_the_price_may_come_from_the_environment_and_says_so(monkeypatch):
    monkeypatch.setenv("LDMPICK_PRICE", "$2.49/h")
    doc = recommend_json("--budget", "0.2 cents")
    assert doc["cost_model"] == "money" and doc["budget"] == pytest.approx(0.002)
    assert doc["inputs"]["price"]["source"] == "$LDMPICK_PRICE"
    assert doc["inputs"]["price"]["usd_per_hour"] == pytest.approx(PRICE)
    # a flag beats the environment
    assert recommend_json("--budget", "$0.002", "--price", "3/h")["inputs"]["price"]["source"] == "--price"


def test_the_plan_shows_dollars_and_the_price_it_used():
    r = runner.invoke(app, ["recommend", "--budget", "$0.002", "--price", "2.49/h"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.stdout.split())  # (rich wraps the cells)
    for piece in ("Recommended within $0.002", "predicted cost per image", "$2.49 per device-hour (--price)",
                  "per 1,000 images", "cost per image", "at $2.49 per device-hour (--price): "):
        assert piece in out, piece
    assert "chance over budget" in out


def test_without_a_price_a_money_budget_is_one_line_saying_how_to_give_one():
    line = one_line_error(runner.invoke(app, ["recommend", "--budget", "$0.002"]))
    assert "never guesses" in line and "--price 2.49/h" in line and "LDMPICK_PRICE" in line
    line = one_line_error(runner.invoke(app, ["generate", "a red circle", "--budget", "$0.002"]))
    assert "--price 2.49/h" in line


@pytest.mark.parametrize("price, message", [
    ("2.49", "per what? write '2.49/h'"),
    ("2.49/day", "unknown time unit 'day' (use /h, /min or /s)"),
    ("cheap", "is not a price"),
    ("€2.49/h", "is not a price"),
    ("-1/h", "is not a price"),
    ("0/h", "must be a positive, finite price"),
    ("1e999/h", "must be a positive, finite price"),
    ("9" * 80 + "/h", "is too long for a price"),
])
def test_bad_price_spellings_are_one_line(price, message):
    line = one_line_error(runner.invoke(app, ["recommend", "--budget", "$0.002", "--price", price]))
    assert line.startswith(f"error: --price '") and message in line, line


def test_a_bad_price_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("LDMPICK_PRICE", "2.49")
    line = one_line_error(runner.invoke(app, ["recommend", "--budget", "$0.002"]))
    assert line.startswith("error: $LDMPICK_PRICE '2.49': per what?")
    # a latency budget does not use it: the machine-wide default is ignored, not refused
    assert recommend_json("--budget", "2s")["cost_model"] == "measured"


@pytest.mark.parametrize("text, price", [("2.49/h", 2.49), ("$2.49/h", 2.49), (" $ 2.49 / hour ", 2.49),
                                         ("2.49/hr", 2.49), ("0.05/min", 3.0), ("0.001/s", 3.6), (".5/H", 0.5)])
def test_price_spellings(text, price):
    assert parse_price(text).usd_per_hour == pytest.approx(price)


@pytest.mark.parametrize("text, dollars", [("$0.002", 0.002), ("$ 0.002", 0.002), (" $.5 ", 0.5), ("0.002$", 0.002),
                                           ("0.002 usd", 0.002), ("0.002USD", 0.002), ("0.2 cents", 0.002),
                                           ("1 cent", 0.01), ("3 dollars", 3.0), ("$2e-3", 0.002)])
def test_dollar_budgets_parse(text, dollars):
    assert MONEY.parse_budget(text) == pytest.approx(dollars)
    assert budget_cost_model(text, price="1/h").name == "money"


@pytest.mark.parametrize("text, message", [
    ("$", "empty budget; give one such as"), ("$abc", "not a number"), ("$0.002s", "a dollar sign and a unit"),
    ("$-1", "must be positive"), ("$0", "must be positive"), ("2s", "a money budget is dollars per image"),
])
def test_bad_dollar_budgets(text, message):
    with pytest.raises(UsageError, match=message):
        MONEY.parse_budget(text)


@pytest.mark.parametrize("budget, name", [("2s", "measured"), ("1500 ms", "measured"), ("3", "measured"),
                                          ("$0.002", "money"), ("50J", "energy"), ("0.5 kJ", "energy"),
                                          ("0.01Wh", "energy"), ("2 parsecs", "measured")])
def test_the_unit_picks_the_cost_model(budget, name):
    assert budget_cost_model(budget, price="1/h" if name == "money" else None).name == name
    # a price from the environment is a machine-wide default: other budgets ignore it
    assert budget_cost_model(budget, price="1/h", price_source="$LDMPICK_PRICE").name == name


def test_a_named_cost_model_and_a_budget_of_another_unit_disagree_in_one_line():
    line = one_line_error(runner.invoke(app, ["recommend", "--budget", "$0.002", "--cost-model", "measured"]))
    assert line.endswith("; '$' is a money budget's unit: drop --cost-model to count dollars per image, the measured "
                         "latency x the device price you give (--price)")
    line = one_line_error(runner.invoke(app, ["recommend", "--budget", "3s", "--cost-model", "flops"]))
    assert "sampling-cost units" in line and "'s' is a measured budget's unit: drop --cost-model" in line
    line = one_line_error(runner.invoke(app, ["recommend", "--budget", "3", "--cost-model", "money", "--price",
                                              "1/h"]))
    assert "a money budget is dollars per image" in line
    # the paper's cost still takes its bare number when named
    assert recommend_json("--cost-model", "flops", "--budget", "3", "--samplers", "ddim")["best"]["steps"] == 23


def test_a_typed_price_without_a_money_budget_is_refused():
    line = one_line_error(runner.invoke(app, ["recommend", "--budget", "2s", "--price", "2.49/h"]))
    assert "--price applies to a money budget" in line
    line = one_line_error(runner.invoke(app, ["generate", "x", "--model", "demo-c8", "--steps", "2", "--price",
                                              "2.49/h"]))
    assert "--price applies to a money budget" in line


def test_generate_runs_a_money_budget_as_the_seconds_it_buys():
    text, note = as_latency_budget("$0.002", price="2.49/h")
    assert MONEY.with_price("2.49/h").latency_budget(0.002) == pytest.approx(0.002 / PRICE * 3600)
    assert cost_model("measured").parse_budget(text) == pytest.approx(0.002 / PRICE * 3600)
    assert note == "budget $0.002 per image batch is 2.89 s of this device at $2.49 per device-hour (--price)"
    assert as_latency_budget("2s") == ("2s", None) and as_latency_budget(None) == (None, None)


def test_generate_with_a_money_budget_says_what_it_buys_and_runs_it(tmp_path):
    r = runner.invoke(app, ["generate", "a red circle", "--budget", "$0.00002", "--price", "2.49/h", "--seed", "1",
                            "--out", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    said = r.stderr.splitlines()
    assert said[0] == "budget $0.00002 per image batch is 29 ms of this device at $2.49 per device-hour (--price)"
    assert any(line.startswith("selected ") and " within 29 ms " in line for line in said)
    assert json.loads(r.stdout)["images"]
    # a budget below what anything costs says it in dollars too, in one line
    line = one_line_error(runner.invoke(app, ["generate", "a red circle", "--budget", "$0.0000001", "--price", "2.49/h",
                                              "--out", str(tmp_path / "p")]))
    assert "below the fastest possible configuration" in line and line.endswith("$2.49 per device-hour (--price))")


def test_generate_refuses_an_energy_budget_in_one_line():
    line = one_line_error(runner.invoke(app, ["generate", "a red circle", "--budget", "50J"]))
    assert "generate plans on latency" in line and "ldmpick recommend --budget 50J" in line


@pytest.mark.parametrize("value, text", [(0.002, "$0.002"), (0.00137, "$0.00137"), (0.001372, "$0.00137"),
                                         (2.49, "$2.49"), (12.3, "$12.30"), (0.01, "$0.01"), (1234.5, "$1234.50")])
def test_dollars_are_written_to_three_figures_and_at_least_cents(value, text):
    assert fmt_dollars(value) == text


# ---------------------------------------------------------------------------------------------- energy


def energy_profile(tmp_path, energy: dict[str, float] = ENERGY) -> str:
    doc = json.loads(make_profile(H100_GRAPH, mode="cudagraph").dumps())
    for m in doc["models"]:
        if m["name"] in energy:
            m["energy"] = {"denoiser_step_j": energy[m["name"]], "text_encoder_j": TE_J, "vae_decode_j": VAE_J,
                           "sampler_step_j": SAMPLER_J, "device": "NVIDIA H100 80GB HBM3"}
    path = tmp_path / "h100-energy.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_an_energy_budget_on_a_profile_with_nvml_energy(tmp_path):
    doc = recommend_json("--budget", "50J", "--profile", energy_profile(tmp_path))
    assert doc["cost_model"] == "energy" and doc["unit"] == "J" and doc["budget"] == 50.0
    best = doc["best"]
    steps, evals = best["steps"], best["parts"]["evals_per_step"]
    saved = 1 if best["sampler"] == "heun" else 0
    joules = TE_J + (steps * evals - saved) * ENERGY[best["model"]] + steps * SAMPLER_J + VAE_J
    assert best["latency"] == pytest.approx(joules, abs=1e-5) and joules <= 50
    assert best["parts"]["text_encoder"] + best["parts"]["denoise"] + best["parts"]["vae_decode"] == \
        pytest.approx(joules, abs=1e-5)
    assert "over_budget_chance" not in best  # one mean per measured block: no spread, no chance stated
    assert "NVML's total-energy counter" in doc["explanation"] and "host's CPU" in doc["explanation"]
    # a tighter budget affords fewer joules: a cheaper pick
    assert recommend_json("--budget", "0.02kJ", "--profile", energy_profile(tmp_path))["best"]["latency"] <= 20


def test_the_energy_plan_shows_joules(tmp_path):
    r = runner.invoke(app, ["recommend", "--budget", "50J", "--profile", energy_profile(tmp_path)])
    assert r.exit_code == 0, r.output
    out = " ".join(r.stdout.split())
    for piece in ("Recommended within 50.0 J", "predicted energy", "(NVML, NVIDIA H100 80GB HBM3)", "text encoder 1.200 J"):
        assert piece in out, piece


def test_models_without_energy_are_not_considered_and_say_why(tmp_path):
    doc = recommend_json("--budget", "50J", "--profile", energy_profile(tmp_path, {"ldm-39m": 0.9}))
    assert doc["best"]["model"] == "ldm-39m"
    assert any(e.startswith("ldm-5b: no energy measurement in profile") for e in doc["excluded"])


def test_an_energy_budget_on_a_cpu_profile_is_one_line():
    line = one_line_error(runner.invoke(app, ["recommend", "--budget", "50J"]))
    assert line.startswith(f"error: {NO_ENERGY}: profile '") and "measured on AMD EPYC" in line


@pytest.mark.parametrize("budget, message", [("5mJ", "millijoules or megajoules?"), ("-5J", "must be positive")])
def test_bad_energy_budgets_are_one_line(budget, message):
    assert message in one_line_error(runner.invoke(app, ["recommend", "--budget", budget]))


# ---------------------------------------------------------------------------------------------- the NVML meter


class FakeNvml(types.ModuleType):
    """A stand-in for nvidia-ml-py's ``pynvml`` on a machine with one GPU whose counter says ``mj``."""

    def __init__(self, mj: list[int] | None, name: str = "NVIDIA H100 80GB HBM3"):
        super().__init__("pynvml")
        self.readings, self.name, self.inits, self.shutdowns = mj, name, 0, 0

    def nvmlInit(self):
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index):
        if index != 0:
            raise RuntimeError("NVML_ERROR_INVALID_ARGUMENT")
        return "handle-0"

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if not uuid.startswith("GPU-"):
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return "handle-0"

    def nvmlDeviceGetName(self, handle):
        return self.name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.readings is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")  # a MIG slice, a pre-Volta board
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


def test_the_meter_is_none_without_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert meter.EnergyMeter.open("cuda") is None
    ran = []
    with meter.energy_block("cuda", synchronize=lambda: ran.append("sync")) as block:
        ran.append("work")
    assert ran == ["work"] and block.reading is None  # the work ran; no counter was read


def test_the_meter_is_none_on_a_cpu_and_without_a_counter(monkeypatch):
    fake = FakeNvml(None)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert meter.EnergyMeter.open("cpu") is None
    assert meter.EnergyMeter.open("cuda:0") is None  # the board has no energy counter
    assert meter.EnergyMeter.open("cuda:3") is None  # no such board
    assert fake.inits == fake.shutdowns == 2  # every NVML init it made is shut down again
    with meter.energy_block("cuda") as block:
        pass
    assert block.reading is None


def test_the_meter_reads_the_counter_around_the_block(monkeypatch):
    fake = FakeNvml([1_000_000, 1_000_000, 1_250_500])  # mJ since the driver loaded: at open, start and end
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    calls = []
    with meter.energy_block("cuda", uuid="58a2d3b6-0000", synchronize=lambda: calls.append("sync")) as block:
        calls.append("work")
    assert calls == ["sync", "work", "sync"]
    r = block.reading
    assert r is not None and r.joules == pytest.approx(250.5) and r.device == "NVIDIA H100 80GB HBM3"
    assert r.per(10) == pytest.approx(25.05) and r.seconds >= 0 and r.too_short
    assert fake.inits == fake.shutdowns == 1


def test_a_counter_that_goes_back_gives_no_reading(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([5_000, 5_000, 10]))  # open, start, end: a driver reload
    m = meter.EnergyMeter.open()
    assert m is not None
    with m, m.block() as block:
        pass
    assert block.reading is None


def test_joules_per_call_fills_a_block_of_a_second(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([0, 1_000, 5_000]))
    m = meter.EnergyMeter.open()
    calls = []
    assert meter.joules_per_call(m, lambda: calls.append(1), 0.01) == pytest.approx(4.0 / 100)
    assert len(calls) == 100  # 1 s of 10 ms calls
    assert meter.joules_per_call(None, lambda: calls.append(1), 0.01) is None and len(calls) == 100


def test_errors_of_the_measured_work_are_not_swallowed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([1, 2]))
    with pytest.raises(ZeroDivisionError):
        with meter.energy_block("cuda"):
            1 / 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"\s*\$?\s*[-+]?[0-9.eE]{0,8}\s*[A-Za-z$]{0,6}\s*", fullmatch=True))
def test_any_budget_text_is_a_cost_model_or_a_usage_error(text):
    for price, source in ((None, "--price"), ("2.49/h", "--price"), ("2.49/h", "$LDMPICK_PRICE")):
        try:
            cm = budget_cost_model(text, price=price, price_source=source)
            cm.parse_budget(text)
        except UsageError:
            pass  # (never another exception: no traceback)
