"""vitalcheck.domain.TrainingDomain: the per-request out-of-distribution score.

Checked against what the score is meant to say (a point against a strong correlation is unusual
although each of its values is ordinary; about 1 % of fresh rows from the training distribution
are flagged), against an independent Ledoit–Wolf computation, and for what the service relies on
(NaN / ±inf give finite scores, pass-through transform, pickle round trip, no training rows kept).
"""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.covariance import LedoitWolf
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from vitalcheck.domain import TrainingDomain

RHO = 0.95


def correlated(n, seed, rho=RHO):
    """(n, 2) standard Gaussian rows with correlation ``rho``."""
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)


def mixed(n, seed):
    """(n, 5) rows like a ColumnTransformer's output: 3 numeric columns (one with ~10 % NaN), 2 one-hot."""
    rng = np.random.default_rng(seed)
    numeric = rng.multivariate_normal(
        [50.0, 120.0, 5.0], [[100.0, 60.0, 0.0], [60.0, 225.0, 0.0], [0.0, 0.0, 1.0]], size=n
    )
    numeric[rng.random(n) < 0.1, 2] = np.nan
    group = rng.random(n) < 0.3
    return np.column_stack([numeric, group, ~group]).astype(np.float64)


@pytest.fixture(scope="module")
def fitted_2d():
    return TrainingDomain().fit(correlated(5000, seed=0))


def test_point_against_the_correlation_is_unusual(fitted_2d):
    train = correlated(5000, seed=0)
    lo, hi = np.percentile(train, [5, 95], axis=0)
    against = np.array([[1.5, -1.5]])  # each value inside the central 90 % of its marginal
    assert np.all((lo < against) & (against < hi))
    typical = np.array([[1.0, 1.0]])  # along the correlation: squared distance ≈ 1.03, ~40th percentile
    assert fitted_2d.percentile(against)[0] > 99
    assert fitted_2d.unusual(against)[0]
    assert 10 < fitted_2d.percentile(typical)[0] < 90
    assert not fitted_2d.unusual(typical)[0]
    # A diagonal (per-column) model would miss it: its marginal z-scores are only ±1.5.
    assert fitted_2d.score(against)[0] > 10 * fitted_2d.score(typical)[0]


@pytest.mark.parametrize("make", [correlated, mixed], ids=["correlated", "mixed"])
def test_unusual_rate_on_fresh_rows_is_about_one_percent(make):
    domain = TrainingDomain().fit(make(5000, seed=1))
    rate = domain.unusual(make(5000, seed=2)).mean()
    assert 0.003 <= rate <= 0.025


def test_percentile_and_unusual_definitions(fitted_2d):
    rows = correlated(3000, seed=3) * 1.3
    scores, pct, flag = fitted_2d.score(rows), fitted_2d.percentile(rows), fitted_2d.unusual(rows)
    assert scores.shape == pct.shape == flag.shape == (3000,)
    assert flag.dtype == np.bool_ and pct.dtype == np.float64
    assert np.all((0 <= pct) & (pct <= 100))
    expected = 100.0 * (fitted_2d.training_scores_[None, :] < scores[:, None]).mean(axis=1)
    np.testing.assert_allclose(pct, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(flag, pct > 99)
    np.testing.assert_array_equal(flag, scores > fitted_2d.threshold_99_)
    assert 0.003 < flag.mean() < 0.2  # the inflated sample has some, not all, unusual rows
    # The training rows themselves: percentiles are ranks, 1 % (rounded down) of them above 99.
    train = correlated(5000, seed=0)
    train_flags = fitted_2d.unusual(train)
    # "strictly below": a training row's own score does not count, so the ranks are 0 … n - 1.
    np.testing.assert_allclose(np.sort(fitted_2d.percentile(train)), 100.0 * np.arange(5000) / 5000, atol=1e-12)
    assert train_flags.sum() == 5000 - (99 * 5000 // 100) - 1
    assert fitted_2d.percentile(np.array([[0.0, 0.0]]))[0] < 1
    assert fitted_2d.percentile(np.array([[1e3, -1e3]]))[0] == 100


@pytest.mark.parametrize("n", [100, 997, 1000, 5000, 9100])  # 9100: 9009 * (100 / 9100) > 99 in floats
def test_unusual_is_exactly_percentile_above_99_at_the_boundary(monkeypatch, n):
    domain = TrainingDomain().fit(correlated(n, seed=16))
    t = domain.training_scores_
    probe = np.concatenate([t, (t[:-1] + t[1:]) / 2, [t[-1] + 1]])  # every rank, ties included
    monkeypatch.setattr(domain, "score", lambda X: probe)
    np.testing.assert_array_equal(domain.unusual(None), domain.percentile(None) > 99)
    assert domain.unusual(None).sum() == 2 * (n - 1 - 99 * n // 100) + 1


def test_score_matches_ledoit_wolf_mahalanobis():
    train = mixed(2000, seed=4)
    domain = TrainingDomain().fit(train)
    mean, std = np.nanmean(train, axis=0), np.nanstd(train, axis=0)

    def embed(x):
        z = np.nan_to_num((x - mean) / std, nan=0.0)
        return np.column_stack([z, np.isnan(x[:, 2])])

    lw = LedoitWolf().fit(embed(train))
    rows = mixed(300, seed=5)
    np.testing.assert_allclose(domain.score(rows), lw.mahalanobis(embed(rows)), rtol=1e-9)
    np.testing.assert_allclose(domain.training_scores_, np.sort(lw.mahalanobis(embed(train))), rtol=1e-9)
    assert domain.training_scores_.dtype == np.float64
    assert np.all(np.diff(domain.training_scores_) >= 0)
    assert domain.threshold_99_ == pytest.approx(np.percentile(domain.training_scores_, 99), rel=0.05)
    assert domain.n_features_in_ == 5


def test_nan_handling():
    train = mixed(2000, seed=6)
    train[:, 3] = np.nan  # a column that is always missing in training
    domain = TrainingDomain().fit(train)
    np.testing.assert_array_equal(domain.missing_columns_, [2, 3])
    assert domain.location_.shape == (5 + 2,)
    assert domain.precision_.shape == (7, 7)
    assert domain.location_[5] == pytest.approx(np.isnan(train[:, 2]).mean())  # the indicator's mean
    assert domain.mean_[3] == 0 and domain.scale_[3] == 1
    assert domain.scale_[4] == pytest.approx(np.std(train[:, 4]))

    row = np.array([[50.0, 120.0, 5.0, np.nan, 1.0]])
    with_nan = row.copy()
    with_nan[0, 2] = np.nan  # missing where training had missing values: indicator on
    unseen_nan = row.copy()
    unseen_nan[0, 0] = np.nan  # missing where training never was: treated as the mean
    all_nan = np.full((1, 5), np.nan)
    infinite = np.array([[np.inf, -np.inf, 5.0, np.nan, 1.0]])
    rows = np.vstack([row, with_nan, unseen_nan, all_nan, infinite])
    before = rows.copy()
    scores = domain.score(rows)
    np.testing.assert_array_equal(rows, before)  # the input is not modified
    assert np.all(np.isfinite(scores)) and np.all(scores >= 0)
    assert np.all(np.isfinite(domain.percentile(rows)))
    # Rows at the mean differ only by the indicator; the unseen NaN equals the mean value exactly.
    at_mean = row.copy()
    at_mean[0, 0] = domain.mean_[0]
    assert domain.score(unseen_nan)[0] == pytest.approx(domain.score(at_mean)[0])
    assert domain.score(with_nan)[0] != pytest.approx(domain.score(row)[0])
    assert domain.unusual(infinite)[0]
    assert domain.score(np.array([[1e300, -1e300, 5.0, 0.0, 1.0]]))[0] == pytest.approx(scores[4])


def test_nan_column_gets_an_indicator_and_missingness_can_be_unusual():
    rng = np.random.default_rng(7)
    train = rng.normal(size=(4000, 3))
    train[rng.random(4000) < 0.001, 1] = np.nan  # column 1 is almost never missing
    domain = TrainingDomain().fit(train)
    np.testing.assert_array_equal(domain.missing_columns_, [1])
    row = np.array([[0.0, np.nan, 0.0]])
    assert domain.unusual(row)[0]  # missing where training almost never was
    assert not domain.unusual(np.array([[0.0, 0.0, 0.0]]))[0]
    no_missing = TrainingDomain().fit(np.nan_to_num(train))
    assert no_missing.missing_columns_.size == 0
    assert not no_missing.unusual(row)[0]  # no indicator: the NaN is just the mean


def test_constant_column_never_seen_value_is_unusual():
    rng = np.random.default_rng(15)
    train = np.column_stack([rng.normal(size=(3000, 2)), np.zeros(3000)])  # a one-hot level never seen
    domain = TrainingDomain().fit(train)
    assert domain.scale_[2] == 1 and domain.mean_[2] == 0
    assert np.all(np.isfinite(domain.training_scores_))
    assert not domain.unusual(np.array([[0.0, 0.0, 0.0]]))[0]
    assert domain.unusual(np.array([[0.0, 0.0, 1.0]]))[0]


def test_transform_is_a_pass_through(fitted_2d):
    rows = correlated(10, seed=8)
    assert fitted_2d.transform(rows) is rows
    train = mixed(500, seed=9)
    y = (train[:, 0] > 50).astype(int)
    X = np.nan_to_num(train)
    pipe = Pipeline([("domain", TrainingDomain()), ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    alone = LogisticRegression(max_iter=1000).fit(X, y)
    np.testing.assert_array_equal(pipe.predict_proba(X), alone.predict_proba(X))
    assert TrainingDomain().fit_transform(X) is X
    assert list(pipe[:-1].get_feature_names_out(["a", "b", "c", "d", "e"])) == ["a", "b", "c", "d", "e"]
    np.testing.assert_array_equal(pipe.named_steps["domain"].score(X), TrainingDomain().fit(X).score(X))
    pipe.set_output(transform="pandas")  # a pipeline-wide setting leaves the step a pass-through
    assert pipe.named_steps["domain"].transform(X) is X


@pytest.mark.parametrize("dumper", ["pickle", "joblib"])
def test_pickle_round_trip_gives_identical_scores(tmp_path, dumper):
    train = mixed(1500, seed=10)
    domain = TrainingDomain().fit(train)
    rows = mixed(200, seed=11)
    if dumper == "pickle":
        loaded = pickle.loads(pickle.dumps(domain))
    else:
        joblib.dump(domain, tmp_path / "domain.joblib")
        loaded = joblib.load(tmp_path / "domain.joblib")
    np.testing.assert_array_equal(loaded.score(rows), domain.score(rows))
    np.testing.assert_array_equal(loaded.percentile(rows), domain.percentile(rows))
    np.testing.assert_array_equal(loaded.unusual(rows), domain.unusual(rows))
    assert loaded.threshold_99_ == domain.threshold_99_


def test_fitted_object_holds_no_training_rows():
    n_rows = 997  # not equal to any fitted dimension
    train = mixed(n_rows, seed=12)
    domain = TrainingDomain().fit(train)
    d = domain.n_features_in_
    p = d + domain.missing_columns_.size  # the preprocessed space's dimension
    for name, value in vars(domain).items():
        if isinstance(value, np.ndarray):
            assert value.dtype != object, name
            if name == "training_scores_":
                assert value.shape == (n_rows,)
            else:
                assert value.size <= p * p, name
                assert n_rows not in value.shape, name
        else:
            assert isinstance(value, (int, float)), f"{name} is a {type(value).__name__}, expected arrays only"
    assert len(pickle.dumps(domain)) < 8 * (n_rows + 2 * p * p) + 2000


def test_errors():
    with pytest.raises(NotFittedError):
        TrainingDomain().score(np.zeros((1, 2)))
    domain = TrainingDomain().fit(correlated(100, seed=13))
    with pytest.raises(ValueError, match="shape"):
        domain.score(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="shape"):
        domain.score(np.zeros(2))
    with pytest.raises(ValueError, match="inf"):
        TrainingDomain().fit(np.array([[1.0, np.inf], [0.0, 1.0]]))
    with pytest.raises(ValueError):
        TrainingDomain().fit(np.zeros((0, 2)))


def test_vectorised_rows_score_as_they_do_alone(fitted_2d):
    rows = correlated(50, seed=14)
    one_by_one = np.concatenate([fitted_2d.score(rows[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(fitted_2d.score(rows), one_by_one, rtol=1e-12)
