"""The model catalog: one record per served model, shared by training and serving.

Each :class:`ModelSpec` names the artifact file, the BentoML model-store name, the
artifact kind, and the raw input features (snake_case, unit in the name) in the order
the scikit-learn pipeline expects them as DataFrame columns. Training loaders map the
data set's source columns onto these names; the service's request schemas use the
same names, so validated request fields go straight into the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FeatureType = Literal["number", "integer", "boolean", "category"]
ModelKind = Literal["classifier", "regressor", "interval_regressor", "onnx_image"]


@dataclass(frozen=True)
class FeatureSpec:
    """One raw input feature of a tabular model.

    Attributes:
        name: snake_case column name the pipeline expects (unit in the name where it has one).
        type: ``number``, ``integer``, ``boolean`` or ``category``.
        description: what it measures, for people and for the OpenAPI page.
        source_column: the column in the shared data set it comes from.
        unit: unit of measurement, or ``""`` for unitless values.
        valid_min: smallest value the API accepts (physiological or logical bound).
        valid_max: largest value the API accepts.
        categories: allowed values for ``category`` features (exact spelling).
        nullable: whether the value may be missing (null); the pipeline imputes it.
        zero_means_missing: the source format codes "not measured" as 0 (read as missing).
        bp_part: the source column holds "systolic/diastolic"; this feature is that part.
        direction: the direction medicine has established for the output as this value rises:
            1 (risk or output rises), -1 (falls) or 0 (none imposed); the model is
            constrained to it (a monotonic constraint).
        category_directions: for a ``category`` feature, ``(category, ±1)`` pairs: being in that
            category moves the output up (1) or down (-1) against not being in it.
        direction_source: where the direction comes from (a key of :data:`DIRECTION_SOURCES`).

    """

    name: str
    type: FeatureType
    description: str
    source_column: str
    unit: str = ""
    valid_min: float | None = None
    valid_max: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    zero_means_missing: bool = False
    bp_part: Literal["systolic", "diastolic"] | None = None
    direction: Literal[-1, 0, 1] = 0
    category_directions: tuple[tuple[str, Literal[-1, 1]], ...] = ()
    direction_source: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One served model.

    Attributes:
        name: short name used in routes, the CLI and cards (``diabetes``).
        store_name: BentoML model-store name (``vitalcheck-diabetes``).
        artifact: artifact file name inside the artifacts directory.
        kind: how the artifact is served (see :data:`ModelKind`).
        task: one-line description of what is predicted.
        dataset: data-set folder under the data directory.
        source_file: the data set's file, relative to the data directory (training and evaluation only).
        route: the HTTP route of its single-record endpoint (tabular: ``/batch`` and ``/file`` below it).
        features: raw input features, in pipeline column order (empty for images).
        classes: output class order for classifiers (positive class last for binary).
        target_unit: unit of a regression output.
        example: one real record of the data set (the OpenAPI example, and the tests').

    """

    name: str
    store_name: str
    artifact: str
    kind: ModelKind
    task: str
    dataset: str
    route: str
    source_file: str = ""
    features: tuple[FeatureSpec, ...] = field(default_factory=tuple)
    classes: tuple[str, ...] = ()
    target_unit: str = ""
    example: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def feature_names(self) -> list[str]:
        """Column names the pipeline expects, in order."""
        return [f.name for f in self.features]

    @property
    def card_file(self) -> str:
        """File name of the JSON model card stored beside the artifact."""
        return self.artifact.rsplit(".", 1)[0] + ".card.json"

    @property
    def compiled_file(self) -> str:
        """File name of the compiled serving form stored beside a tabular artifact (:mod:`vitalcheck.compiled`)."""
        return self.artifact.rsplit(".", 1)[0] + ".compiled.npz"


DIRECTION_SOURCES: dict[str, str] = {
    "ada": "American Diabetes Association. Standards of Care in Diabetes-2024, section 2: risk-based screening "
    "(age, overweight/obesity, first-degree family history, hypertension). Diabetes Care 2024;47(Suppl 1):S20-S42.",
    "who_ogtt": "WHO/IDF. Definition and diagnosis of diabetes mellitus and intermediate hyperglycaemia, 2006: "
    "2-h OGTT glucose 140-199 mg/dL impaired tolerance, >= 200 mg/dL diabetes.",
    "pima_dpf": "Smith JW et al. Using the ADAP learning algorithm to forecast the onset of diabetes mellitus. "
    "Proc Annu Symp Comput Appl Med Care 1988:261-265 (the pedigree function scores family history of diabetes).",
    "acc_aha_exercise": "Gibbons RJ et al. ACC/AHA 2002 guideline update for exercise testing: exercise ST depression, "
    "exercise-induced angina and a low peak heart rate (chronotropic incompetence) indicate coronary disease.",
    "acc_aha_prevention": "Arnett DK et al. 2019 ACC/AHA guideline on the primary prevention of cardiovascular disease "
    "(age, blood pressure and cholesterol raise atherosclerotic risk).",
    "fluoroscopy_ca": "Detrano R et al. Am J Cardiol 1989;64:304-310 (the UCI heart data): vessels coloured by "
    "fluoroscopy mark coronary calcification, more vessels more disease.",
    "aha_stroke": "Meschia JF et al. Guidelines for the primary prevention of stroke, AHA/ASA. Stroke 2014;45:3754-3832 "
    "(age, hypertension, diabetes/hyperglycaemia, cardiac disease, cigarette smoking and obesity raise stroke risk).",
    "wdbc_nuclei": "Street WN, Wolberg WH, Mangasarian OL. Nuclear feature extraction for breast tumor diagnosis. "
    "SPIE 1905, 1993: malignant nuclei are larger (radius, perimeter, area) with more and deeper concavities.",
    "aca_rating": "US Affordable Care Act, 42 U.S.C. 300gg(a)(1): premiums may vary by age (up to 3:1) and tobacco use "
    "(up to 1.5:1); smoking-attributable health-care spending (CDC, Xu X et al. Am J Prev Med 2015;48:326-333).",
    "life_table": "Preston SH, Heuveline P, Guillot M. Demography, 2001, ch. 3: life expectancy at birth is computed "
    "from age-specific mortality, so higher adult, under-five and HIV mortality lower it.",
    "preston_hdi": "Preston SH. The changing relation between mortality and level of economic development. Popul Stud "
    "1975;29:231-248; UNDP Human Development Report technical notes: income and schooling rise with longevity.",
}
"""Sources of the catalog's expected directions (:attr:`FeatureSpec.direction_source` keys)."""


def _direction(rises: str, falls: str) -> dict[str, Any]:
    if rises and falls:
        raise ValueError("a feature rises or falls, not both")
    source = rises or falls
    if source and source not in DIRECTION_SOURCES:
        raise ValueError(f"unknown direction source {source!r}")
    return {"direction": 1 if rises else -1 if falls else 0, "direction_source": source}


def _num(
    name,
    source,
    desc,
    unit="",
    lo=None,
    hi=None,
    nullable=False,
    integer=False,
    zero=False,
    bp=None,
    rises="",
    falls="",
):
    return FeatureSpec(
        name=name,
        type="integer" if integer else "number",
        description=desc,
        source_column=source,
        unit=unit,
        valid_min=lo,
        valid_max=hi,
        nullable=nullable,
        zero_means_missing=zero,
        bp_part=bp,
        **_direction(rises, falls),
    )


def _cat(name, source, desc, categories, nullable=False, directions=None, why=""):
    if directions and why not in DIRECTION_SOURCES:
        raise ValueError(f"unknown direction source {why!r}")
    return FeatureSpec(
        name=name,
        type="category",
        description=desc,
        source_column=source,
        categories=tuple(categories),
        nullable=nullable,
        category_directions=tuple((directions or {}).items()),
        direction_source=why,
    )


def _bool(name, source, desc, nullable=False, rises="", falls=""):
    return FeatureSpec(
        name=name, type="boolean", description=desc, source_column=source, nullable=nullable, **_direction(rises, falls)
    )


# fmt: off
_DIABETES_FEATURES = (
    _num("pregnancies", "Pregnancies", "Number of times pregnant.", "count", 0, 20, integer=True),
    _num("glucose_mg_dl", "Glucose", "Plasma glucose 2 h into an oral glucose tolerance test.", "mg/dL", 40, 300, nullable=True, zero=True, rises="who_ogtt"),
    _num("diastolic_bp_mm_hg", "BloodPressure", "Diastolic blood pressure.", "mm Hg", 20, 150, nullable=True, zero=True, rises="ada"),
    _num("skin_thickness_mm", "SkinThickness", "Triceps skin-fold thickness.", "mm", 5, 100, nullable=True, zero=True),
    _num("insulin_uu_ml", "Insulin", "2-hour serum insulin.", "µU/mL", 10, 1000, nullable=True, zero=True),
    _num("bmi_kg_m2", "BMI", "Body-mass index.", "kg/m²", 10, 80, nullable=True, zero=True, rises="ada"),
    _num("diabetes_pedigree", "DiabetesPedigreeFunction", "Diabetes pedigree function (family-history score).", "", 0, 3, rises="pima_dpf"),
    _num("age_years", "Age", "Age.", "years", 18, 100, integer=True, rises="ada"),
)
# fmt: on

DIABETES = ModelSpec(
    name="diabetes",
    store_name="vitalcheck-diabetes",
    artifact="diabetes_pipeline.pkl",
    kind="classifier",
    task="Probability of a diabetes diagnosis within five years (Pima Indians Diabetes).",
    dataset="diabetes",
    source_file="diabetes/diabetes.csv",
    route="/api/v1/risk/diabetes",
    classes=("no_diabetes", "diabetes"),
    features=_DIABETES_FEATURES,
    example={
        "pregnancies": 8,
        "glucose_mg_dl": 183.0,
        "diastolic_bp_mm_hg": 64.0,
        "skin_thickness_mm": None,
        "insulin_uu_ml": None,
        "bmi_kg_m2": 23.3,
        "diabetes_pedigree": 0.672,
        "age_years": 32,
    },
)

# fmt: off
_HEART_FEATURES = (
    _num("age_years", "age", "Age.", "years", 18, 100, integer=True, rises="acc_aha_prevention"),
    _cat("sex", "sex", "Sex.", ["Male", "Female"]),
    _cat("chest_pain_type", "cp", "Chest-pain type.", ["typical angina", "atypical angina", "non-anginal", "asymptomatic"]),
    _num("resting_bp_mm_hg", "trestbps", "Resting systolic blood pressure on admission.", "mm Hg", 60, 250, nullable=True, zero=True, rises="acc_aha_prevention"),
    _num("cholesterol_mg_dl", "chol", "Serum cholesterol (0 in the source means missing).", "mg/dL", 80, 700, nullable=True, zero=True),
    _bool("fasting_blood_sugar_over_120", "fbs", "Fasting blood sugar above 120 mg/dL.", nullable=True),
    _cat("resting_ecg", "restecg", "Resting electrocardiogram result.", ["normal", "st-t abnormality", "lv hypertrophy"], nullable=True),
    _num("max_heart_rate_bpm", "thalch", "Maximum heart rate achieved in the exercise test.", "beats/min", 50, 230, nullable=True, falls="acc_aha_exercise"),
    _bool("exercise_angina", "exang", "Exercise-induced angina.", nullable=True, rises="acc_aha_exercise"),
    _num("st_depression_mm", "oldpeak", "ST depression induced by exercise relative to rest.", "mm", -3, 7, nullable=True, rises="acc_aha_exercise"),
    _cat("st_slope", "slope", "Slope of the peak-exercise ST segment.", ["upsloping", "flat", "downsloping"], nullable=True),
    _num("major_vessels", "ca", "Number of major vessels coloured by fluoroscopy.", "count", 0, 3, nullable=True, integer=True, rises="fluoroscopy_ca"),
    _cat("thalassemia", "thal", "Thallium stress-test result.", ["normal", "fixed defect", "reversable defect"], nullable=True),
)
# fmt: on

HEART = ModelSpec(
    name="heart",
    store_name="vitalcheck-heart",
    artifact="heart_pipeline.pkl",
    kind="classifier",
    task="Probability of angiographic heart disease (>50 % narrowing; UCI Heart Disease num > 0).",
    dataset="heart",
    source_file="heart/heart_disease_uci.csv",
    route="/api/v1/risk/heart",
    classes=("no_heart_disease", "heart_disease"),
    features=_HEART_FEATURES,
    example={
        "age_years": 63,
        "sex": "Male",
        "chest_pain_type": "typical angina",
        "resting_bp_mm_hg": 145.0,
        "cholesterol_mg_dl": 233.0,
        "fasting_blood_sugar_over_120": True,
        "resting_ecg": "lv hypertrophy",
        "max_heart_rate_bpm": 150.0,
        "exercise_angina": False,
        "st_depression_mm": 2.3,
        "st_slope": "downsloping",
        "major_vessels": 0,
        "thalassemia": "fixed defect",
    },
)

# fmt: off
_STROKE_FEATURES = (
    _cat("sex", "gender", "Sex.", ["Male", "Female", "Other"]),
    _num("age_years", "age", "Age.", "years", 0, 120, rises="aha_stroke"),
    _bool("hypertension", "hypertension", "Diagnosed hypertension.", rises="aha_stroke"),
    _bool("heart_disease", "heart_disease", "Diagnosed heart disease.", rises="aha_stroke"),
    _bool("ever_married", "ever_married", "Has ever been married."),
    _cat("work_type", "work_type", "Type of work.", ["Private", "Self-employed", "Govt_job", "children", "Never_worked"]),
    _cat("residence_type", "Residence_type", "Type of residence.", ["Urban", "Rural"]),
    _num("avg_glucose_mg_dl", "avg_glucose_level", "Average blood glucose.", "mg/dL", 40, 400, rises="aha_stroke"),
    _num("bmi_kg_m2", "bmi", "Body-mass index (N/A in the source means missing).", "kg/m²", 10, 100, nullable=True, rises="aha_stroke"),
    _cat("smoking_status", "smoking_status", "Smoking status.", ["formerly smoked", "never smoked", "smokes", "Unknown"], directions={"smokes": 1, "formerly smoked": 1, "never smoked": -1}, why="aha_stroke"),
)
# fmt: on

STROKE = ModelSpec(
    name="stroke",
    store_name="vitalcheck-stroke",
    artifact="stroke_pipeline.pkl",
    kind="classifier",
    task="Probability of a recorded stroke (Kaggle Stroke Prediction data set).",
    dataset="stroke",
    source_file="stroke/healthcare-dataset-stroke-data.csv",
    route="/api/v1/risk/stroke",
    classes=("no_stroke", "stroke"),
    features=_STROKE_FEATURES,
    example={
        "sex": "Female",
        "age_years": 82.0,
        "hypertension": False,
        "heart_disease": False,
        "ever_married": True,
        "work_type": "Self-employed",
        "residence_type": "Urban",
        "avg_glucose_mg_dl": 243.59,
        "bmi_kg_m2": 24.3,
        "smoking_status": "never smoked",
    },
)

_WDBC_MEASURES = (
    ("radius", "Mean distance from centre to points on the perimeter.", "pixels", 0, 60),
    ("texture", "Standard deviation of grey-scale values.", "grey levels", 0, 80),
    ("perimeter", "Nucleus perimeter.", "pixels", 0, 400),
    ("area", "Nucleus area.", "pixels²", 0, 6000),
    ("smoothness", "Local variation in radius lengths.", "", 0, 1),
    ("compactness", "perimeter² / area − 1.0.", "", 0, 2),
    ("concavity", "Severity of concave portions of the contour.", "", 0, 2),
    ("concave_points", "Number of concave portions of the contour.", "", 0, 1),
    ("symmetry", "Symmetry of the nucleus.", "", 0, 1),
    ("fractal_dimension", "Coastline approximation − 1.", "", 0, 1),
)
_WDBC_RISING = ("radius", "perimeter", "area", "concavity", "concave_points")
"""Measures whose mean and worst value raise the malignancy probability (size and concavity)."""
_WDBC_STATS = (
    ("mean", "mean over nuclei"),
    ("se", "standard error over nuclei"),
    ("worst", "mean of the three largest values"),
)

# fmt: off
_BREAST_CANCER_FEATURES = tuple(
        _num(
            f"{m}_{s}",
            f"{m.replace('_', ' ') if m == 'concave_points' else m}_{s}",
            f"{d} ({sd}).",
            unit,
            lo,
            hi * (1 if s != "se" else 0.5) if hi else hi,
            rises="wdbc_nuclei" if m in _WDBC_RISING and s != "se" else "",
        )
        for s, sd in _WDBC_STATS
        for m, d, unit, lo, hi in _WDBC_MEASURES
    )
# fmt: on

BREAST_CANCER = ModelSpec(
    name="breast_cancer",
    store_name="vitalcheck-breast-cancer",
    artifact="breast_cancer_pipeline.pkl",
    kind="classifier",
    task="Probability that a fine-needle aspirate is malignant (Wisconsin Diagnostic Breast Cancer).",
    dataset="breast_cancer",
    source_file="breast_cancer/wdbc.csv",
    route="/api/v1/risk/breast-cancer",
    classes=("benign", "malignant"),
    features=_BREAST_CANCER_FEATURES,
    example={
        "radius_mean": 20.57,
        "texture_mean": 17.77,
        "perimeter_mean": 132.9,
        "area_mean": 1326.0,
        "smoothness_mean": 0.08474,
        "compactness_mean": 0.07864,
        "concavity_mean": 0.0869,
        "concave_points_mean": 0.07017,
        "symmetry_mean": 0.1812,
        "fractal_dimension_mean": 0.05667,
        "radius_se": 0.5435,
        "texture_se": 0.7339,
        "perimeter_se": 3.398,
        "area_se": 74.08,
        "smoothness_se": 0.005225,
        "compactness_se": 0.01308,
        "concavity_se": 0.0186,
        "concave_points_se": 0.0134,
        "symmetry_se": 0.01389,
        "fractal_dimension_se": 0.003532,
        "radius_worst": 24.99,
        "texture_worst": 23.41,
        "perimeter_worst": 158.8,
        "area_worst": 1956.0,
        "smoothness_worst": 0.1238,
        "compactness_worst": 0.1866,
        "concavity_worst": 0.2416,
        "concave_points_worst": 0.186,
        "symmetry_worst": 0.275,
        "fractal_dimension_worst": 0.08902,
    },
)

# fmt: off
_SLEEP_FEATURES = (
    _cat("sex", "Gender", "Sex.", ["Male", "Female"]),
    _num("age_years", "Age", "Age.", "years", 18, 100, integer=True),
    _cat("occupation", "Occupation", "Occupation.", ["Accountant", "Doctor", "Engineer", "Lawyer", "Manager", "Nurse", "Sales Representative", "Salesperson", "Scientist", "Software Engineer", "Teacher"]),
    _num("sleep_duration_h", "Sleep Duration", "Sleep per night.", "hours", 0, 16),
    _num("sleep_quality_1_10", "Quality of Sleep", "Self-rated sleep quality, 1 (worst) to 10 (best).", "score", 1, 10, integer=True),
    _num("physical_activity_min_per_day", "Physical Activity Level", "Physical activity per day.", "minutes/day", 0, 600, integer=True),
    _num("stress_level_1_10", "Stress Level", "Self-rated stress, 1 (lowest) to 10 (highest).", "score", 1, 10, integer=True),
    _cat("bmi_category", "BMI Category", "BMI category as recorded.", ["Normal", "Normal Weight", "Overweight", "Obese"]),
    _num("systolic_bp_mm_hg", "Blood Pressure", "Systolic blood pressure (from 'sys/dia').", "mm Hg", 70, 250, integer=True, bp="systolic"),
    _num("diastolic_bp_mm_hg", "Blood Pressure", "Diastolic blood pressure (from 'sys/dia').", "mm Hg", 40, 150, integer=True, bp="diastolic"),
    _num("resting_heart_rate_bpm", "Heart Rate", "Resting heart rate.", "beats/min", 30, 200, integer=True),
    _num("daily_steps", "Daily Steps", "Steps per day.", "steps/day", 0, 100000, integer=True),
)
# fmt: on

SLEEP = ModelSpec(
    name="sleep",
    store_name="vitalcheck-sleep",
    artifact="sleep_pipeline.pkl",
    kind="classifier",
    task="Sleep disorder class: None, Insomnia or Sleep Apnea (Sleep Health and Lifestyle, synthetic).",
    dataset="sleep",
    source_file="sleep/Sleep_health_and_lifestyle_dataset.csv",
    route="/api/v1/sleep",
    classes=("None", "Insomnia", "Sleep Apnea"),
    features=_SLEEP_FEATURES,
    example={
        "sex": "Male",
        "age_years": 27,
        "occupation": "Software Engineer",
        "sleep_duration_h": 6.1,
        "sleep_quality_1_10": 6,
        "physical_activity_min_per_day": 42,
        "stress_level_1_10": 6,
        "bmi_category": "Overweight",
        "systolic_bp_mm_hg": 126,
        "diastolic_bp_mm_hg": 83,
        "resting_heart_rate_bpm": 77,
        "daily_steps": 4200,
    },
)

_pct = "% of one-year-olds"
# fmt: off
_LIFE_EXPECTANCY_FEATURES = (
    _num("year", "Year", "Calendar year of the indicators.", "year", 1990, 2100, integer=True),
    _cat("development_status", "Status", "Development status.", ["Developing", "Developed"]),
    _num("adult_mortality_per_1000", "Adult Mortality", "Probability of dying between 15 and 60 years.", "per 1000 adults", 0, 1000, nullable=True, falls="life_table"),
    _num("infant_deaths_per_1000", "infant deaths", "Infant deaths.", "per 1000 population", 0, 2000, nullable=True),
    _num("alcohol_litres_per_capita", "Alcohol", "Recorded alcohol consumption, age 15+.", "litres pure alcohol/year", 0, 25, nullable=True),
    _num("health_expenditure_pct_gdp_per_capita", "percentage expenditure", "Health expenditure as % of GDP per capita.", "%", 0, 25000, nullable=True),
    _num("hepatitis_b_coverage_pct", "Hepatitis B", "Hepatitis B immunisation coverage.", _pct, 0, 100, nullable=True),
    _num("measles_cases_per_1000", "Measles ", "Reported measles cases.", "per 1000 population", 0, 250000, nullable=True),
    _num("mean_bmi_kg_m2", " BMI ", "Average body-mass index of the population (as recorded).", "kg/m²", 0, 100, nullable=True),
    _num("under_five_deaths_per_1000", "under-five deaths ", "Under-five deaths.", "per 1000 population", 0, 3000, nullable=True, falls="life_table"),
    _num("polio_coverage_pct", "Polio", "Polio immunisation coverage.", _pct, 0, 100, nullable=True),
    _num("total_health_expenditure_pct", "Total expenditure", "Government health expenditure as % of total government expenditure.", "%", 0, 100, nullable=True),
    _num("diphtheria_coverage_pct", "Diphtheria ", "DTP3 immunisation coverage.", _pct, 0, 100, nullable=True),
    _num("hiv_aids_deaths_per_1000", " HIV", "Deaths of 0-4-year-olds from HIV/AIDS.", "per 1000 live births", 0, 100, nullable=True, falls="life_table"),
    _num("gdp_per_capita_usd", "GDP", "Gross domestic product per capita.", "USD", 0, 200000, nullable=True),
    _num("population", "Population", "Population of the country.", "people", 0, 2000000000.0, nullable=True),
    _num("thinness_10_19_pct", " thinness  1-19 years", "Prevalence of thinness among 10-19-year-olds.", "%", 0, 100, nullable=True),
    _num("thinness_5_9_pct", " thinness 5-9 years", "Prevalence of thinness among 5-9-year-olds.", "%", 0, 100, nullable=True),
    _num("income_composition_index", "Income composition of resources", "Human Development Index in terms of income composition (0-1; 0 in the source means missing, so the API takes 0.05 and above).", "", 0.05, 1, nullable=True, zero=True, rises="preston_hdi"),
    _num("schooling_years", "Schooling", "Expected years of schooling (0 in the source means missing, so the API takes 0.5 and above).", "years", 0.5, 25, nullable=True, zero=True, rises="preston_hdi"),
)
# fmt: on

LIFE_EXPECTANCY = ModelSpec(
    name="life_expectancy",
    store_name="vitalcheck-life-expectancy",
    artifact="life_expectancy_pipeline.pkl",
    kind="regressor",
    task="Life expectancy at birth of a country-year, in years (WHO Global Health Observatory).",
    dataset="life_expectancy",
    source_file="life_expectancy/who_life_expectancy.csv",
    route="/api/v1/life-expectancy",
    target_unit="years",
    features=_LIFE_EXPECTANCY_FEATURES,
    example={
        "year": 2015,
        "development_status": "Developing",
        "adult_mortality_per_1000": 74.0,
        "infant_deaths_per_1000": 0.0,
        "alcohol_litres_per_capita": 4.6,
        "health_expenditure_pct_gdp_per_capita": 364.9752287,
        "hepatitis_b_coverage_pct": 99.0,
        "measles_cases_per_1000": 0.0,
        "mean_bmi_kg_m2": 58.0,
        "under_five_deaths_per_1000": 0.0,
        "polio_coverage_pct": 99.0,
        "total_health_expenditure_pct": 6.0,
        "diphtheria_coverage_pct": 99.0,
        "hiv_aids_deaths_per_1000": 0.1,
        "gdp_per_capita_usd": 3954.22783,
        "population": 28873.0,
        "thinness_10_19_pct": 1.2,
        "thinness_5_9_pct": 1.3,
        "income_composition_index": 0.762,
        "schooling_years": 14.2,
    },
)

# fmt: off
_INSURANCE_FEATURES = (
    _num("age_years", "age", "Age of the primary beneficiary.", "years", 18, 100, integer=True, rises="aca_rating"),
    _cat("sex", "sex", "Sex of the primary beneficiary.", ["female", "male"]),
    _num("bmi_kg_m2", "bmi", "Body-mass index.", "kg/m²", 10, 70),
    _num("children", "children", "Number of children covered by the insurance.", "count", 0, 10, integer=True),
    _bool("smoker", "smoker", "Smokes.", rises="aca_rating"),
    _cat("region", "region", "Residential area in the US.", ["northeast", "northwest", "southeast", "southwest"]),
)
# fmt: on

INSURANCE = ModelSpec(
    name="insurance",
    store_name="vitalcheck-insurance",
    artifact="insurance_pipeline.pkl",
    kind="interval_regressor",
    task="Annual medical insurance charges in USD: central estimate and a calibrated 5-95 % interval.",
    dataset="insurance",
    source_file="insurance/insurance.csv",
    route="/api/v1/insurance",
    target_unit="USD/year",
    features=_INSURANCE_FEATURES,
    example={
        "age_years": 19,
        "sex": "female",
        "bmi_kg_m2": 27.9,
        "children": 0,
        "smoker": True,
        "region": "southwest",
    },
)

BRAIN_TUMOR = ModelSpec(
    name="brain_tumor",
    store_name="vitalcheck-brain-tumor",
    artifact="brain_tumor_cnn.onnx",
    kind="onnx_image",
    task="Class of one axial brain MRI slice: glioma, meningioma, pituitary tumour or no tumour.",
    dataset="brain_mri",
    route="/api/v1/imaging/brain-tumor",
    classes=("glioma", "meningioma", "notumor", "pituitary"),
)

TABULAR_MODELS: dict[str, ModelSpec] = {
    m.name: m for m in (DIABETES, HEART, STROKE, BREAST_CANCER, SLEEP, LIFE_EXPECTANCY, INSURANCE)
}
"""The seven scikit-learn models, by short name."""

MODELS: dict[str, ModelSpec] = {**TABULAR_MODELS, BRAIN_TUMOR.name: BRAIN_TUMOR}
"""All eight served models, by short name."""

REFERENCE_TABLES: dict[str, str] = {
    "fitbit_percentiles": "fitbit_percentiles.parquet",
    "hospital_analytics": "hospital_analytics.parquet",
}
"""The two Parquet reference tables (name → file in the reference directory)."""
