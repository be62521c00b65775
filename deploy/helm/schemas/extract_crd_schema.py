"""Writes the openAPIV3Schema of one version of an upstream CustomResourceDefinition as a
JSON file, without the `description` texts (they are most of the bytes and validate
nothing). Run with any Python that has PyYAML:

    python3 extract_crd_schema.py CRD.yaml VERSION OUT.json
"""

import json
import sys

import yaml

# Schema keywords whose value is a map of property name -> schema; a property may itself be
# called "description", so only keyword-position descriptions are dropped.
SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
SCHEMA_ONE = ("items", "additionalProperties", "not")


def strip(schema):
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip(sub) for name, sub in value.items()}
        elif key in SCHEMA_LISTS and isinstance(value, list):
            out[key] = [strip(sub) for sub in value]
        elif key in SCHEMA_ONE and isinstance(value, dict):
            out[key] = strip(value)
        else:
            out[key] = value
    return out


def main(crd_path, version, out_path):
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    spec = crd["spec"]
    [found] = [v for v in spec["versions"] if v["name"] == version]
    schema = strip(found["schema"]["openAPIV3Schema"])
    schema["x-vttiro-source"] = {
        "group": spec["group"],
        "kind": spec["names"]["kind"],
        "version": version,
    }
    with open(out_path, "w") as f:
        json.dump(schema, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
