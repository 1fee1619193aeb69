"""Parses FHIR R4 JSON files with the FHIR R4 (4.0.1) models of the PyPI package
fhir.resources 6.2 (installed by scripts/validate-fhir.sh). Exit 0 valid, 1 invalid, 2 error."""
import json
import sys

try:
    import fhir.resources
    from fhir.resources import get_fhir_model_class
except ImportError as error:  # pragma: no cover - install problem
    print(f"model validator not installed: {error}", file=sys.stderr)
    sys.exit(2)

if fhir.resources.__fhir_version__ != "4.0.1":
    print(f"expected FHIR 4.0.1 models, found {fhir.resources.__fhir_version__}", file=sys.stderr)
    sys.exit(2)

invalid = 0
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        print(f"{path}: cannot read JSON: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        model = get_fhir_model_class(data.get("resourceType", ""))
        model.parse_obj(data)
    except Exception as error:  # pydantic.ValidationError, KeyError for unknown types
        invalid += 1
        print(f"{path}: not valid FHIR R4 ({type(error).__name__}):")
        print(str(error))
    else:
        print(f"{path}: valid against the fhir.resources {fhir.resources.__version__} R4 models")
sys.exit(1 if invalid else 0)
