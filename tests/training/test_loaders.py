"""The loaders parse the real shared files; expected values are recomputed here with plain pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.training import loaders

pytestmark = pytest.mark.usefixtures("one_thread")


def raw(data_dir, name: str) -> pd.DataFrame:
    return pd.read_csv(loaders.data_file(name, data_dir), keep_default_na=False, na_values=[""])


@pytest.mark.parametrize("name", list(TABULAR_MODELS))
def test_loader_returns_catalog_columns_and_labels(data_dir, name):
    spec = TABULAR_MODELS[name]
    X, y = loaders.load(name, loaders.data_file(name, data_dir))
    assert list(X.columns) == spec.feature_names
    assert len(X) == len(y) > 100
    assert X.index.equals(y.index)
    if spec.kind == "classifier":
        assert set(y) == set(spec.classes)
    else:
        assert y.dtype == np.float64 and y.notna().all()
    for feat in spec.features:
        col = X[feat.name]
        if not feat.nullable:
            assert col.notna().all(), feat.name
        if feat.type == "boolean":
            assert all(isinstance(v, bool | np.bool_) for v in col.dropna()), feat.name


@pytest.mark.parametrize("name", list(TABULAR_MODELS))
def test_real_rows_pass_the_catalog(data_dir, name):
    X, _ = loaders.load(name, loaders.data_file(name, data_dir))
    assert loaders.catalog_violations(name, X) == []


def test_diabetes_zeros_become_missing(data_dir):
    src = raw(data_dir, "diabetes")
    X, y = loaders.load("diabetes", loaders.data_file("diabetes", data_dir))
    for source, name in [
        ("Glucose", "glucose_mg_dl"),
        ("BloodPressure", "diastolic_bp_mm_hg"),
        ("SkinThickness", "skin_thickness_mm"),
        ("Insulin", "insulin_uu_ml"),
        ("BMI", "bmi_kg_m2"),
    ]:
        assert X[name].isna().sum() == (src[source] == 0).sum() > 0
        assert (X[name].dropna() > 0).all()
        np.testing.assert_array_equal(X[name].dropna().to_numpy(), src.loc[src[source] != 0, source].to_numpy(float))
    assert (X["pregnancies"] == 0).sum() == (src["Pregnancies"] == 0).sum()  # a real zero stays zero
    assert (y == "diabetes").sum() == src["Outcome"].sum()


def test_heart_codes_site_and_target(data_dir):
    src = pd.read_csv(
        loaders.data_file("heart", data_dir), keep_default_na=False, na_values=[""], dtype={"exang": str, "fbs": str}
    )
    X, y, meta = loaders.load_with_meta("heart", loaders.data_file("heart", data_dir))
    assert "dataset" not in X.columns and "site" not in X.columns
    assert X["cholesterol_mg_dl"].isna().sum() == (src["chol"] == 0).sum() + src["chol"].isna().sum()
    assert (X["cholesterol_mg_dl"].dropna() > 0).all()
    assert X["fasting_blood_sugar_over_120"].isna().sum() == src["fbs"].isna().sum()
    assert (X["exercise_angina"] == True).sum() == (src["exang"] == "True").sum()  # noqa: E712
    assert ((y == "heart_disease") == (src["num"] > 0)).all()
    assert sorted(meta["site"].unique()) == sorted(src["dataset"].unique())


def test_stroke_na_bmi_and_flags(data_dir, tmp_path):
    src = pd.read_csv(loaders.data_file("stroke", data_dir), dtype=str, keep_default_na=False)
    X, y = loaders.load("stroke", loaders.data_file("stroke", data_dir))
    assert X["bmi_kg_m2"].isna().sum() == src["bmi"].isin(["", "N/A"]).sum() > 0
    assert X["ever_married"].sum() == (src["ever_married"] == "Yes").sum()
    assert X["hypertension"].dtype == bool
    assert (y == "stroke").sum() == (src["stroke"] == "1").sum()
    # the original Kaggle spelling "N/A" is also read as missing
    literal = tmp_path / "stroke.csv"
    literal.write_text(
        "id,gender,age,hypertension,heart_disease,ever_married,work_type,Residence_type,avg_glucose_level,bmi,smoking_status,stroke\n"
        "1,Male,67,0,1,Yes,Private,Urban,228.69,N/A,formerly smoked,1\n"
        "2,Female,61,0,0,No,Self-employed,Rural,202.21,28.1,never smoked,0\n"
    )
    X2, y2 = loaders.load("stroke", literal)
    assert np.isnan(X2["bmi_kg_m2"].iloc[0]) and X2["bmi_kg_m2"].iloc[1] == 28.1
    assert list(y2) == ["stroke", "no_stroke"]


def test_breast_cancer_columns(data_dir):
    src = raw(data_dir, "breast_cancer")
    X, y = loaders.load("breast_cancer", loaders.data_file("breast_cancer", data_dir))
    assert X.shape[1] == 30
    np.testing.assert_array_equal(X["concave_points_worst"].to_numpy(), src["concave points_worst"].to_numpy())
    assert (y == "malignant").sum() == (src["diagnosis"] == "M").sum()


def test_sleep_blood_pressure_split_and_none_label(data_dir):
    src = raw(data_dir, "sleep")
    X, y = loaders.load("sleep", loaders.data_file("sleep", data_dir))
    rebuilt = X["systolic_bp_mm_hg"].astype(str) + "/" + X["diastolic_bp_mm_hg"].astype(str)
    assert (rebuilt == src["Blood Pressure"]).all()
    assert (X["systolic_bp_mm_hg"] > X["diastolic_bp_mm_hg"]).all()
    assert y.notna().all() and (y == "None").sum() == (src["Sleep Disorder"] == "None").sum() > 0


def test_life_expectancy_stray_spaces_and_missing_target(data_dir):
    src = pd.read_csv(loaders.data_file("life_expectancy", data_dir))
    assert "Life expectancy " in src.columns and " BMI " in src.columns  # the source really has stray spaces
    X, y, meta = loaders.load_with_meta("life_expectancy", loaders.data_file("life_expectancy", data_dir))
    kept = src[src["Life expectancy "].notna()]
    assert len(X) == len(kept) < len(src)
    np.testing.assert_array_equal(X["mean_bmi_kg_m2"].to_numpy(), kept[" BMI "].to_numpy())
    np.testing.assert_array_equal(X["thinness_10_19_pct"].to_numpy(), kept[" thinness  1-19 years"].to_numpy())
    np.testing.assert_array_equal(y.to_numpy(), kept["Life expectancy "].to_numpy())
    assert X["income_composition_index"].isna().sum() == (kept["Income composition of resources"].fillna(0) == 0).sum()
    assert (meta["country"] == kept["Country"]).all()


def test_insurance(data_dir):
    src = raw(data_dir, "insurance")
    X, y = loaders.load("insurance", loaders.data_file("insurance", data_dir))
    assert X["smoker"].sum() == (src["smoker"] == "yes").sum()
    np.testing.assert_array_equal(y.to_numpy(), src["charges"].to_numpy())


def test_missing_source_column_is_named(tmp_path):
    bad = tmp_path / "diabetes.csv"
    bad.write_text(
        "Pregnancies,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome\n1,66,29,0,26.6,0.351,31,0\n"
    )
    with pytest.raises(ValueError, match="Glucose"):
        loaders.load("diabetes", bad)
