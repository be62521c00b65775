"""Validates the custom resources in a multi-document YAML stream (a file, or - for
stdin) against the CRD schemas beside this script, as the API server's strict field
validation would: unknown fields are errors, as they are for `kubectl apply` since
Kubernetes 1.27. Documents of kinds with no schema here are reported and fail the run, so
a new CRD in the chart cannot go unchecked. Needs PyYAML and jsonschema.

    python3 validate_crds.py rendered.yaml
"""

import copy
import json
import pathlib
import sys

import jsonschema
import yaml

HERE = pathlib.Path(__file__).resolve().parent


def schema_file(api_version, kind):
    group, _, version = api_version.rpartition("/")
    return HERE / f"{group}_{version}_{kind}.json"


def strict(schema):
    """Copy of an OpenAPI v3 structural schema in which objects with declared properties
    refuse undeclared ones, except where the CRD preserves unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for sub in node.get(key, {}).values():
                walk(sub)
        for key in ("items", "additionalProperties", "not"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key, []):
                walk(sub)

    walk(schema)
    return schema


def main(path):
    text = sys.stdin.read() if path == "-" else pathlib.Path(path).read_text()
    failures = 0
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        file = schema_file(doc.get("apiVersion", ""), doc.get("kind", ""))
        if not file.exists():
            print(f"ERROR {name}: no schema {file.name} in {HERE}")
            failures += 1
            continue
        schema = strict(json.loads(file.read_text()))
        schema.pop("x-vttiro-source", None)
        validator = jsonschema.Draft7Validator(schema)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for error in errors:
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            print(f"ERROR {name}: {where}: {error.message}")
        if errors:
            failures += 1
        else:
            print(f"OK {name} against {file.name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "-"))
