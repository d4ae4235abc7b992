"""Checks an OpenAPI document: valid OpenAPI (openapi-spec-validator), and the curl examples of
the markdown files given (README.md and docs/api.md, the API reference) agree with it.

For every `curl` in their bash blocks that sends a body (`-d '…'`) to a documented route,
the body must validate against that operation's request schema, unless the README shows the
call being refused (its answer is an error: such bodies are wrong on purpose, and some are wrong
in ways no schema can say, such as a tcp:// endpoint with an http check). Every answer shown as
a complete JSON line (`# {…}`, not abbreviated with `…`) must validate against one of that
operation's response schemas (an error against an error status's, anything else against a 2xx)
and hold no property that schema does not describe: the schemas leave room for new fields, but
the README must not show one the document does not know (a renamed field, say).

Run by scripts/check-openapi.sh, inside the venv that holds the pinned validator.
"""

import json
import re
import shlex
import sys
from importlib.metadata import version
from urllib.parse import urlsplit

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:openapi-document"


def main(document_path, *readme_paths):
    with open(document_path, encoding="utf-8") as f:
        spec = json.load(f)
    validate(spec)
    print(
        f"openapi-spec-validator {version('openapi-spec-validator')}: "
        f"{document_path} is a valid OpenAPI {spec['openapi']} document"
    )
    checker = Checker(spec)
    examples = []
    for readme_path in readme_paths:
        with open(readme_path, encoding="utf-8") as f:
            for example in curl_examples(f.read()):
                example["file"] = readme_path
                examples.append(example)
    bodies = answers = refused = 0
    failures = []
    for example in examples:
        operation = checker.operation(example["method"], example["path"])
        if operation is None:
            failures.append(f"{example['file']} line {example['line']}: {example['method']} {example['path']} is not documented")
            continue
        answer = example["answer"]
        is_error = isinstance(answer, dict) and "error" in answer
        if example["body"] is not None:
            if is_error:
                refused += 1
            else:
                bodies += 1
                failures += checker.check_body(operation, example)
        if answer is not None:
            answers += 1
            failures += checker.check_answer(operation, example, is_error)
    print(
        f"README: {bodies} request bodies valid against their schemas "
        f"({refused} bodies the README shows refused were not judged), "
        f"{answers} answers checked against their response schemas"
    )
    # The README always has registrations, heartbeats and answers: finding none means the parser
    # broke, not that everything passed.
    if bodies < 5 or answers < 5:
        failures.append(f"too few examples found ({bodies} bodies, {answers} answers): is the README parser broken?")
    sys.stdout.flush()
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


class Checker:
    def __init__(self, spec):
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(BASE, resource)

    def operation(self, method, path):
        return self.spec["paths"].get(path, {}).get(method.lower())

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref):
        node = self.spec
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def errors(self, schema, instance):
        schema = dict(schema)
        if "$ref" in schema:
            schema["$ref"] = BASE + schema["$ref"]
        validator = OAS31Validator(schema, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(instance)]

    def undescribed(self, schema, instance, path="(root)"):
        """Properties of `instance` that `schema` does not describe, wherever they are."""
        schema = self.resolve(schema)
        for choice in schema.get("oneOf", []) + schema.get("anyOf", []) + schema.get("allOf", []):
            if not self.errors(choice, instance):
                return self.undescribed(choice, instance, path)
        if isinstance(instance, list) and "items" in schema:
            return [p for i, item in enumerate(instance) for p in self.undescribed(schema["items"], item, f"{path}/{i}")]
        if not isinstance(instance, dict) or "properties" not in schema:
            return []
        problems = []
        for name, value in instance.items():
            if name not in schema["properties"]:
                problems.append(f"{path}/{name}: not described by the schema")
            else:
                problems += self.undescribed(schema["properties"][name], value, f"{path}/{name}")
        return problems

    def check_body(self, operation, example):
        body = self.resolve(operation.get("requestBody", {}))
        schema = body.get("content", {}).get("application/json", {}).get("schema")
        where = f"{example['file']} line {example['line']}: {example['method']} {example['path']} body"
        if schema is None:
            return [f"{where}: the operation documents no JSON body"]
        return [f"{where}: {e}" for e in self.errors(schema, example["body"])]

    def check_answer(self, operation, example, is_error):
        tried = []
        for status, response in operation["responses"].items():
            if status.startswith("2") == is_error:
                continue
            schema = self.resolve(response).get("content", {}).get("application/json", {}).get("schema")
            if schema is None:
                continue
            problems = self.errors(schema, example["answer"]) or self.undescribed(schema, example["answer"])
            if not problems:
                return []
            tried.append(f"{status}: {problems}")
        where = f"{example['file']} line {example['line']}: {example['method']} {example['path']} answer"
        return [f"{where} matches no documented response: {tried or 'none has a JSON schema'}"]


def curl_examples(readme):
    """(line, method, path, body, answer) for every curl in a bash block; body and answer as
    JSON, or None when absent or abbreviated."""
    lines = readme.splitlines()
    in_bash = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            i += 1
            continue
        if not (in_bash and line.startswith("curl ")):
            i += 1
            continue
        start = i
        command = line
        # A command goes on while it ends in a backslash or a quote is still open.
        while command.endswith("\\") or unbalanced(command):
            i += 1
            command = command.rstrip("\\") + "\n" + lines[i]
        i += 1
        answer_lines = []
        while i < len(lines) and lines[i].startswith("#"):
            answer_lines.append(lines[i].lstrip("#").strip())
            i += 1
        example = parse_command(command)
        if example is None:
            continue
        example["line"] = start + 1
        example["answer"] = parse_answer(answer_lines)
        yield example


def unbalanced(command):
    try:
        shlex.split(strip_comment(command))
        return False
    except ValueError:
        return True


def strip_comment(command):
    # A trailing `# note` after the command, outside quotes.
    return re.sub(r"\s+#[^'\"]*$", "", command)


def parse_command(command):
    words = shlex.split(strip_comment(command.replace("\\\n", " ")))
    method, url, body = None, None, None
    j = 1
    while j < len(words):
        word = words[j]
        if word == "-X":
            method = words[j + 1]
            j += 1
        elif word == "-d":
            body = words[j + 1]
            j += 1
        elif word == "-H":
            j += 1
        elif word.startswith("http"):
            url = word
        j += 1
    if url is None:
        return None
    method = method or ("POST" if body is not None else "GET")
    try:
        body = json.loads(body) if body is not None else None
    except json.JSONDecodeError:
        return None
    return {"method": method, "path": urlsplit(url).path, "body": body}


def parse_answer(comment_lines):
    """The JSON answer a README comment shows, if it is shown whole (a `…` abbreviation or prose
    makes it no answer to check)."""
    text = ""
    for line in comment_lines:
        if not text and not line.startswith("{"):
            continue  # `HTTP/1.1 400 Bad Request` and the like
        text += line
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            continue
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], *sys.argv[2:]))
