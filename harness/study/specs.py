"""The studies: one declarative `Study` each (what to sweep and score, what the paper claims).

A study's sweep is the experiment config `configs/experiment/study/<name>.yaml` (its models, seeds
and settings are that file's `hydra.sweeper.params`), plus the extra grids of `parts` (each run as
its own sweep, e.g. the `freeze_A` ablation of two models only). `quick` are the overrides of the
seconds-long smoke version (`--quick`); `<name>_paper.yaml` beside the config is the paper-scale
recipe for a GPU, named in the study's README and not run by the command.

Before its checks, a study states a testability `criterion`: its baseline rows must close at
least `fraction` of the gap from the reference level (chance accuracy, the trivial predictor's
error) to perfect; the scale was chosen by pilot runs of those rows (`docs/calibration/<name>.md`,
rendered in the README's Calibration section). When the criterion fails, the verdict is "not
testable at this scale" with that evidence.

The verdict is computed from `checks`: each names two rows of the table, (model, setting), what
the claim says about them (`better`: the first beats the second, two-sided t-test on matched
seeds, Holm-Bonferroni adjusted over the study's `better` checks, p < `ALPHA`; `not_worse`: the
first is not significantly worse at the unadjusted level, the stricter reading for the claim)
and the `source` of the claim. A setting `max` / `min` is the largest / smallest setting the
runs have.
"""

from dataclasses import dataclass, field

ALPHA = 0.05
"""Family-wise significance level of a study's checks."""


@dataclass(frozen=True)
class Check:
    """One comparison a claim implies; rows are (model, setting); `source` names the claim (a
    paper and where in it, or the reference code's run)."""

    first: tuple[str, str]
    second: tuple[str, str]
    kind: str  # better | not_worse
    text: str  # what the claim says, e.g. "HOPE beats S4D-Lin at the longest noise"
    source: str


@dataclass(frozen=True)
class Criterion:
    """The testability criterion: every row of `rows` (model, setting) closes at least
    `fraction` of the gap from the reference level to perfect."""

    rows: tuple[tuple[str, str], ...]
    fraction: float = 0.5


@dataclass(frozen=True)
class Part:
    """One grid of the sweep: overrides on top of the experiment config, its own sweep folder;
    `quick`: the grid of the smoke version (fewer models, so that it runs in one round)."""

    label: str
    overrides: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    """Everything the command needs to run, score, tabulate and describe one study."""

    name: str
    title: str
    claim: str  # the papers' claims, in their words where quoted, with where they are made
    setup: str  # what we train (task, sizes, budget) and how it differs from the paper
    explanation: str  # what might explain a difference from the paper
    setting_key: str  # the config key that the `setting` column holds
    baseline: dict[str, str]  # table rows compared against (keys: model and/or setting_key)
    checks: tuple[Check, ...]
    criterion: Criterion
    seeds: int  # seeds per cell of the full study (cells with fewer are marked)
    quick: tuple[str, ...]  # overrides of the smoke version (sizes and budget)
    metric: str | None = None  # None: the task's objective metric (harness.report.stats)
    kernels: bool = False  # also the learned-kernels figure from the runs' checkpoints
    parts: tuple[Part, ...] = field(default=(Part("main"),))

    @property
    def experiment(self) -> str:
        """The experiment config, `experiment=<this>`."""
        return f"study/{self.name}"

    @property
    def calibration(self) -> str:
        """The pilot record, relative to the project root."""
        return f"docs/calibration/{self.name}.md"


QUICK_TRAINER = (
    "trainer.max_epochs=1",
    "trainer.max_steps=2",
    "trainer.batch_size=8",
    "trainer.log_every=1",
    "trainer.device=cpu",
    "trainer.progress=false",
    "seed=0",
)
"""The smoke version's budget: two optimizer steps of one seed on the CPU."""

HTTYH = 'Gu, Johnson, Timalsina, Rudra, Re, "How to Train Your HiPPO" (arXiv 2206.12037)'
S4 = (
    'Gu, Goel, Re, "Efficiently Modeling Long Sequences with Structured State Spaces" '
    "(S4, arXiv 2111.00396)"
)
S4D = (
    'Gu, Gupta, Goel, Re, "On the Parameterization and Initialization of Diagonal State Space '
    'Models" (S4D, arXiv 2206.11893)'
)
HOPE = (
    'Yu, Mahoney, Erichson, "There is HOPE to Avoid HiPPOs for Long-memory State Space Models" '
    "(arXiv 2405.13975)"
)
HOPE_PROBLEMS = (
    "HOPE's abstract (arXiv 2405.13975v1) names three problems of LTI SSMs: they \"(i) require "
    "specifically designed initializations of the system matrices to achieve state-of-the-art "
    "performance, (ii) they require training of state matrices on a logarithmic scale with very "
    "small learning rates to prevent instabilities, and (iii) they require the model to have "
    'exponentially decaying memory"; its Hankel parameterization "allows for random '
    "initializations of the LTI systems and helps to improve training stability, while also "
    'provides the SSMs with non-decaying memory capabilities."'
)
REFERENCE_RUN = (
    "the reference run (state-spaces/s4 configs/experiment/synthetic/s4-delay.yaml at paper "
    "scale, one seed, recorded in docs/calibration/httyh_delay.md)"
)

DELAY_SETUP = (
    "Task `delay` (band-limited white noise, band limit half the Nyquist frequency, rms 0.5; "
    "1024 steps, lag 256 instead of the paper's 4000 and 1000, 4096 training sequences fixed "
    "instead of 16384 fresh ones an epoch). Model as state-spaces/s4 "
    "`configs/experiment/synthetic/s4-delay.yaml`: one layer of width 4, fully linear "
    "(`backbone.linear=true`: no activation, norm, residual, dropout or GLU; per-step linear "
    "readout), dt_min = dt_max (the reference's 0.002 at lag 1000, scaled to keep dt x lag: "
    "0.0078125 at lag 256), AdamW lr 0.001 wd 0, SSM lr 0.001, constant schedule, batch 64; "
    "d_state 256 instead of 1024 and 20 epochs of 64 steps (the reference: 20 of 256), "
    "the same for every model. "
    "Metric: test RMSE = sqrt(test MSE over every step and sequence), lower is better."
)
DELAY_QUICK = (
    *QUICK_TRAINER,
    "task.seq_len=64",
    "task.lag=16",
    "task.n_train=16",
    "task.n_val=8",
    "task.n_test=8",
    "model.layer.d_state=8",
)
DIGITS_SETUP = (
    "Task `digits_noise` (scikit-learn's 8x8 digits read pixel by pixel, 64 steps, then "
    "`task.noise_len` steps of U[0, 1) noise drawn afresh every epoch as the reference does; "
    "the decoder mean-pools over the noise, or over the image at noise 0). Recipe: "
    "`experiment=hope_noisy_scifar` (AnnanYu/HOPE-SSM's noisy-sCIFAR script: post-norm "
    "LayerNorm, tied dropout 0.1, AdamW lr 0.01 wd 0.01, SSM lr 0.001, cosine per epoch, HOPE "
    "d_state 256 with dt frozen at 0.1) scaled down: 2 blocks of width 32 instead of 4 of 128, "
    "8x8 digits (1437 training images) instead of 32x32 CIFAR (45000), and 10 epochs instead "
    "of 100, the same for every model. S4D-Lin as the paper's baseline (d_state 64, dt "
    "trained, unidirectional), S4-LegS beside it with the same settings."
)
DIGITS_QUICK = (*QUICK_TRAINER, "backbone.d_model=4", "backbone.n_layers=1")
BASELINES = (
    "model.layer.d_state=64",
    "model.layer.freeze_dt=false",
    "model.layer.bidirectional=false",
)
"""The recipe's S4D baseline settings (d_state 64, dt trained, unidirectional)."""
BASELINES_QUICK = ("model.layer.d_state=4", "model.layer.freeze_dt=false")

HOPE_MEMORY = Study(
    name="hope_memory",
    title="HOPE keeps its memory under noise padding",
    claim=(
        f"{HOPE}, the noise-padded sequential CIFAR-10 experiment (its figure of test accuracy "
        "against noise length; the numbers are reported as curves only): when uniform noise is "
        "appended after the image and the decoder pools over the noise only, HOPE-SSM keeps "
        "its accuracy while the HiPPO-initialized S4D baseline loses it. " + HOPE_PROBLEMS
    ),
    setup=DIGITS_SETUP + " Noise lengths 0, 64 and 256 steps (1x and 4x the image; the paper: "
    "1x the 1024-step image at most).",
    explanation=(
        "The budget is the first suspect: at short budgets HOPE trains more slowly than "
        "S4D-Lin (this study's own noise-0 rows), and the paper's advantage appears after "
        "100 epochs on 32x32 inputs with noise as long as the image. A model may learn the "
        "noise-0 task yet not carry the label across the noise in 10 epochs."
    ),
    setting_key="task.noise_len",
    baseline={"model": "s4d_lin"},
    parts=(
        Part("main", quick=("task.noise_len=0,16",)),
        Part(
            "baselines",
            ("model=s4d_lin,s4_legs", *BASELINES),
            quick=("model=s4d_lin", *BASELINES_QUICK, "task.noise_len=0,16"),
        ),
    ),
    checks=(
        Check(
            ("hope", "max"),
            ("s4d_lin", "max"),
            "better",
            "HOPE beats S4D-Lin at the longest noise",
            f"{HOPE}, noisy sCIFAR figure",
        ),
        Check(
            ("hope", "max"),
            ("hope", "min"),
            "not_worse",
            "HOPE keeps its accuracy under the longest noise",
            f"{HOPE}, noisy sCIFAR figure (non-decaying memory, claim (iii))",
        ),
    ),
    criterion=Criterion((("s4d_lin", "min"), ("hope", "min"))),
    seeds=3,
    quick=DIGITS_QUICK,
    kernels=True,
)

HOPE_STABILITY = Study(
    name="hope_stability",
    title="HOPE trains its state at the ordinary learning rate",
    claim=HOPE_PROBLEMS
    + " The study trains HOPE, S4D-Lin and S4-LegS with the SSM parameters' learning rate "
    "at the small 0.001 the HiPPO models use, at the optimizer's 0.01, and one decade higher.",
    setup=DIGITS_SETUP + " Noise 0 (the plain 64-step task, where every model learns at the "
    "small learning rate), SSM lr (`model.layer.lr`: A, B, dt or the Markov parameters) 0.001, "
    "0.01, 0.1 with the other parameters at 0.01.",
    explanation=(
        "The paper's claim is about instabilities over long training at scale; ten epochs of "
        "a small model may not reach them, and a cosine schedule lowers every rate towards its "
        "end."
    ),
    setting_key="model.layer.lr",
    baseline={"model.layer.lr": "0.001"},
    parts=(
        Part("main", quick=("model.layer.lr=0.001,0.1",)),
        Part(
            "baselines",
            ("model=s4d_lin,s4_legs", *BASELINES),
            quick=("model=s4d_lin", *BASELINES_QUICK, "model.layer.lr=0.001,0.1"),
        ),
    ),
    checks=(
        Check(
            ("hope", "0.01"),
            ("hope", "0.001"),
            "not_worse",
            "HOPE at the optimizer's learning rate is not worse than at the small one",
            f"{HOPE}, abstract, claim (ii)",
        ),
        Check(
            ("hope", "max"),
            ("hope", "0.001"),
            "not_worse",
            "HOPE one decade above the optimizer's learning rate is not worse than at the "
            "small one",
            f"{HOPE}, abstract, claim (ii)",
        ),
        Check(
            ("s4d_lin", "0.001"),
            ("s4d_lin", "max"),
            "better",
            "S4D-Lin needs the small learning rate (better at 0.001 than at the largest)",
            f"{HOPE}, abstract, problem (ii) of HiPPO-based SSMs",
        ),
        Check(
            ("s4_legs", "0.001"),
            ("s4_legs", "max"),
            "better",
            "S4-LegS needs the small learning rate (better at 0.001 than at the largest)",
            f"{HOPE}, abstract, problem (ii) of HiPPO-based SSMs",
        ),
        Check(
            ("hope", "max"),
            ("s4d_lin", "max"),
            "better",
            "At the largest learning rate HOPE beats S4D-Lin",
            f"{HOPE}, abstract, claim (ii) against problem (ii)",
        ),
    ),
    criterion=Criterion((("hope", "0.001"), ("s4d_lin", "0.001"), ("s4_legs", "0.001"))),
    seeds=5,
    quick=(*DIGITS_QUICK, "task.noise_len=0"),
)

HTTYH_DELAY = Study(
    name="httyh_delay",
    title="Continuous delay: FouT, LegS and their diagonal versions",
    claim=(
        f"{HTTYH}, the continuous-delay (copying) experiment and its table over the "
        "timescales (dt_min, dt_max): a fully linear one-layer SSM must output its "
        "band-limited white-noise input delayed by a fixed lag. The paper derives S4-FouT, "
        "whose basis is a sliding window that can represent a fixed delay, beside S4-LegS, "
        "whose basis is warped over the whole history, and reports the lower error for FouT. "
        "The reference code at paper scale orders the four models S4-FouT < S4-LegS < "
        "S4D-LegS < S4D-Lin in test RMSE (0.0097, 0.0120, 0.0182, 0.0224; one seed, "
        "docs/calibration/httyh_delay.md)."
    ),
    setup=DELAY_SETUP + " 16 seeds, the number the calibration's power calculation asks for.",
    explanation=(
        "Differences from the paper's setting: a state of 256 instead of 1024 (a finite basis "
        "approximates a delay of 256 steps of a signal band-limited to half the Nyquist "
        "frequency only coarsely), a fraction of its optimizer steps, and the dt scaling above "
        "(the paper's table shows the result depends on the timescale)."
    ),
    setting_key="task.lag",
    baseline={"model": "s4_legs"},
    checks=(
        Check(
            ("s4_fout", "max"),
            ("s4_legs", "max"),
            "better",
            "S4-FouT has a lower RMSE than S4-LegS",
            f"{HTTYH}, delay experiment; and {REFERENCE_RUN}",
        ),
        Check(
            ("s4_legs", "max"),
            ("s4d_legs", "max"),
            "better",
            "S4-LegS has a lower RMSE than S4D-LegS",
            REFERENCE_RUN,
        ),
        Check(
            ("s4d_legs", "max"),
            ("s4d_lin", "max"),
            "better",
            "S4D-LegS has a lower RMSE than S4D-Lin",
            REFERENCE_RUN,
        ),
    ),
    criterion=Criterion((("s4_legs", "max"),)),
    seeds=16,
    quick=DELAY_QUICK,
    parts=(Part("main", quick=("model=s4_legs,s4_fout",)),),
    metric="best/test_rmse",
    kernels=True,
)

DT_STUDY = 0.0078125
"""The delay studies' timescale (dt_min = dt_max) at lag 256."""

HTTYH_TIMESCALE = Study(
    name="httyh_timescale",
    title="The timescale dt must match the dependency length",
    claim=(
        f"{HTTYH}: its theory ties the timescale to the length of the dependencies (a "
        "LegS or FouT SSM with step dt remembers a window of about 1/dt steps), and the abstract "
        'says the theory "explains other aspects of training S4, such as how to initialize the '
        'important timescale parameter"; its delay table compares (dt_min, dt_max) = '
        "(1e-3, 2e-3), (2e-3, 2e-3), (1e-3, 1e-1), (2e-3, 1e-1)."
    ),
    setup=DELAY_SETUP.replace(
        "dt_min = dt_max (the reference's",
        "dt_min = dt_max swept around the study value (the reference's",
    )
    + f" Timescale grid dt_min = dt_max = {DT_STUDY:g} x 1/16, 1/4, 1, 4, 16.",
    explanation=(
        "dt is trained (SSM lr 0.001), so a mismatched start may be corrected within the "
        "budget; a small dt makes the memory window longer than the sequence and a large one "
        "shorter than the lag."
    ),
    setting_key="model.layer.dt_min",
    baseline={"model.layer.dt_min": str(DT_STUDY)},
    checks=tuple(
        Check(
            (model, str(DT_STUDY)),
            (model, side),
            "better",
            f"{label} at the matched dt beats the {which} dt (x{factor})",
            f"{HTTYH}, timescale theory and delay table",
        )
        for model, label in (("s4_legs", "S4-LegS"), ("s4_fout", "S4-FouT"))
        for side, which, factor in (("min", "smallest", "1/16"), ("max", "largest", "16"))
    ),
    criterion=Criterion((("s4_legs", str(DT_STUDY)),)),
    seeds=3,
    quick=(*DELAY_QUICK, "model.layer.dt_min=0.0078125,0.125"),
    parts=(Part("main", quick=("model=s4_legs",)),),
    metric="best/test_rmse",
)

INIT_ABLATION = Study(
    name="init_ablation",
    title="Does the HiPPO initialization matter, and does HOPE remove the need for it?",
    claim=(
        f"{S4}, Section 5.4 (SSM ablations on sequential CIFAR: random state matrices, frozen "
        "or trained, against HiPPO; a random A trains far worse, and training A helps); "
        f"{S4D} (S4D-LegS and S4D-Lin against random diagonal initializations); {HTTYH} on "
        "the role of the HiPPO initialization; and " + HOPE_PROBLEMS
    ),
    setup=DELAY_SETUP
    + " Models: S4 with LegS, FouT and random A; S4D with LegS, Lin and random A; HOPE with "
    "its random and its LegS-like initialization; plus `model.layer.freeze_A=true` for "
    "s4_legs and s4d_legs (the state matrix gets no gradient). 5 seeds.",
    explanation=(
        "The S4 ablations are on sequential CIFAR after long training with a nonlinear deep "
        "model; here one linear layer learns a delay, where the initial basis decides what "
        "the layer can represent. HOPE's kernel is sampled on a frequency grid with its dt "
        "frozen, which may suit a classification task over pooled features more than a "
        "per-step delay."
    ),
    setting_key="model.layer.freeze_A",
    baseline={"model": "s4_legs", "model.layer.freeze_A": "false"},
    checks=(
        Check(
            ("s4_legs", "false"),
            ("s4_random", "false"),
            "better",
            "S4-LegS beats S4 with a random A",
            f"{S4}, Section 5.4; {HTTYH}",
        ),
        Check(
            ("s4d_legs", "false"),
            ("s4d_random", "false"),
            "better",
            "S4D-LegS beats S4D with a random A",
            S4D,
        ),
        Check(
            ("hope", "false"),
            ("hope_legs", "false"),
            "not_worse",
            "HOPE's random init is not worse than its LegS-like init",
            f"{HOPE}, abstract, claim (i)",
        ),
        Check(
            ("s4_legs", "false"),
            ("s4_legs", "true"),
            "better",
            "training A helps S4-LegS",
            f"{S4}, Section 5.4",
        ),
        Check(
            ("s4d_legs", "false"),
            ("s4d_legs", "true"),
            "better",
            "training A helps S4D-LegS",
            f"{S4}, Section 5.4 (for S4), extended to S4D",
        ),
    ),
    criterion=Criterion((("s4_legs", "false"),)),
    seeds=5,
    quick=DELAY_QUICK,
    parts=(
        Part("main", quick=("model=s4_legs,hope",)),
        Part(
            "freeze_A",
            ("model=s4_legs,s4d_legs", "model.layer.freeze_A=true"),
            quick=("model=s4_legs", "model.layer.freeze_A=true"),
        ),
    ),
    metric="best/test_rmse",
    kernels=True,
)

STUDIES = {
    s.name: s for s in (HTTYH_TIMESCALE, HTTYH_DELAY, INIT_ABLATION, HOPE_STABILITY, HOPE_MEMORY)
}
"""Every study by name, cheapest first."""
