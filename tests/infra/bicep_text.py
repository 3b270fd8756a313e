"""Just enough reading of Bicep and azure.yaml text for the consistency tests (no Bicep compiler or PyYAML here).

Bicep: comments are dropped and string contents masked (same length, so offsets stay valid), which makes brace
matching and `key:` scanning safe; values are then read from the original text at the same offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_OPEN = "{[("
_CLOSE = "}])"


def mask(text: str) -> str:
    """The text with comments blanked and string literal characters replaced by `x` (quotes and `${...}` kept)."""
    out: list[str] = []
    modes = ["code"]  # stack: code, string; `${` inside a string pushes code until its closing brace
    depth: list[int] = [0]
    i = 0
    while i < len(text):
        ch = text[i]
        mode = modes[-1]
        if mode == "code":
            if text.startswith("//", i):
                end = text.find("\n", i)
                end = len(text) if end < 0 else end
                out.append(" " * (end - i))
                i = end
                continue
            if text.startswith("/*", i):
                end = text.find("*/", i + 2)
                end = len(text) if end < 0 else end + 2
                out.append("".join(c if c == "\n" else " " for c in text[i:end]))
                i = end
                continue
            if ch == "'":
                modes.append("string")
                out.append(ch)
            elif ch == "{":
                depth[-1] += 1
                out.append(ch)
            elif ch == "}":
                if depth[-1] == 0 and len(modes) > 1:  # end of an interpolation: back into the string
                    modes.pop()
                    depth.pop()
                else:
                    depth[-1] -= 1
                out.append(ch)
            else:
                out.append(ch)
            i += 1
            continue
        # inside a string literal
        if ch == "\\" and i + 1 < len(text):
            out.append("xx")
            i += 2
        elif text.startswith("${", i):
            modes.append("code")
            depth.append(0)
            out.append("${")
            i += 2
        elif ch == "'":
            modes.pop()
            out.append(ch)
            i += 1
        else:
            out.append("\n" if ch == "\n" else "x")
            i += 1
    return "".join(out)


def matching(masked: str, open_at: int) -> int:
    """Index just past the bracket that closes the one at `open_at` (in masked text)."""
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] in _OPEN:
            depth += 1
        elif masked[i] in _CLOSE:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced bracket at offset {open_at}")


def top_level_keys(masked_block: str) -> list[str]:
    """`key:` names directly inside the outermost braces of a block (nested objects are skipped)."""
    keys: list[str] = []
    depth = 0
    for match in re.finditer(r"[{}\[\]()]|(?:(?<=\n)|(?<=\{))[ \t]*([A-Za-z_]\w*)[ \t]*:", masked_block):
        token = match.group(0)
        if token in _OPEN:
            depth += 1
        elif token in _CLOSE:
            depth -= 1
        elif depth == 1:
            keys.append(match.group(1))
    return keys


def object_keys(masked_block: str) -> list[str]:
    """`key:` names of every object literal in a block (a key is preceded by `{` or a line start)."""
    return re.findall(r"(?:^|[{\n])[ \t]*([A-Za-z_]\w*)[ \t]*:(?!:)", masked_block)


@dataclass
class Declaration:
    kind: str  # resource or module
    symbol: str
    target: str  # resource type@version, or module path / registry reference
    existing: bool
    start: int
    end: int
    text: str  # the original text of the body, braces included
    masked: str
    loop: str | None = None  # the collection a `[for x in <collection>: {...}]` declaration iterates


@dataclass
class BicepFile:
    path: Path
    text: str = ""
    masked: str = ""
    declarations: dict[str, Declaration] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> BicepFile:
        text = path.read_text()
        masked = mask(text)
        found = cls(path, text, masked)
        pattern = re.compile(
            r"^(resource|module)\s+(\w+)\s+'([^']*)'\s*(existing\s*)?=\s*"
            r"(?:\[\s*for\s+(?:\w+|\(\w+,\s*\w+\))\s+in\s+(\w+)\s*:\s*)?(?:if\s*\(.*?\)\s*)?\{",
            re.MULTILINE,
        )
        for match in pattern.finditer(masked):
            target = text[match.start(3) : match.end(3)]
            open_at = match.end() - 1
            end = matching(masked, open_at)
            found.declarations[match.group(2)] = Declaration(
                match.group(1),
                match.group(2),
                target,
                bool(match.group(4)),
                open_at,
                end,
                text[open_at:end],
                masked[open_at:end],
                match.group(5),
            )
        return found

    def params(self) -> dict[str, bool]:
        """Parameter names, each with whether it must be given (no default and not nullable)."""
        found = {}
        for match in re.finditer(r"^param\s+(\w+)\s+(\w+)(\?)?[ \t]*(=)?", self.masked, re.MULTILINE):
            found[match.group(1)] = not (match.group(3) or match.group(4))
        return found

    def param_line(self, name: str) -> tuple[str, list[str]]:
        """The `param` line for a name and the decorator lines just above it."""
        lines = self.text.splitlines()
        masked_lines = self.masked.splitlines()
        for index, line in enumerate(masked_lines):
            if re.match(rf"param\s+{name}\b", line):
                decorators: list[str] = []
                above = index - 1
                while above >= 0:
                    previous = masked_lines[above]
                    if not previous.strip() or re.match(r"(param|var|resource|module|output|targetScope)\b", previous):
                        break
                    decorators.insert(0, lines[above])
                    above -= 1
                return lines[index], decorators
        raise KeyError(name)

    def outputs(self) -> dict[str, str]:
        """Output names and their value expressions (original text)."""
        found = {}
        for match in re.finditer(r"^output\s+(\w+)\s+\w+\s*=\s*(.*)$", self.masked, re.MULTILINE):
            found[match.group(1)] = self.text[match.start(2) : match.end(2)].strip()
        return found

    def var_block(self, name: str) -> tuple[str, str]:
        """The original and masked text of `var <name> = <expression>` (the expression may span lines)."""
        match = re.search(rf"^var\s+{name}\s*=\s*", self.masked, re.MULTILINE)
        if not match:
            raise KeyError(name)
        start = match.end()
        if self.masked[start] in _OPEN or re.match(r"\w+\(", self.masked[start:]):
            open_at = self.masked.index("(", start) if self.masked[start] not in _OPEN else start
            end = matching(self.masked, open_at)
        else:
            end = self.masked.index("\n", start)
        return self.text[start:end], self.masked[start:end]

    def string_vars(self) -> dict[str, str]:
        """`var name = 'literal'` values."""
        return {
            match.group(1): self.text[match.start(2) : match.end(2)]
            for match in re.finditer(r"^var\s+(\w+)\s*=\s*'([^'\n]*)'", self.masked, re.MULTILINE)
        }

    def string_array_var_of_param(self, name: str) -> list[str]:
        """`param name array = [ 'a' 'b' ]` values."""
        match = re.search(rf"^param\s+{name}\s+array\s*=\s*\[", self.masked, re.MULTILINE)
        if not match:
            raise KeyError(name)
        end = matching(self.masked, match.end() - 1)
        strings = re.compile(r"'([^'\n]*)'").finditer(self.masked, match.end(), end)
        return [self.text[m.start(1) : m.end(1)] for m in strings]

    def string_array_var(self, name: str) -> list[str]:
        """`var name = [ 'a' 'b' ]` values."""
        text, masked = self.var_block(name)
        return [text[m.start(1) : m.end(1)] for m in re.finditer(r"'([^'\n]*)'", masked)]


def module_params(declaration: Declaration) -> list[str]:
    """The names a module declaration passes in its `params: { ... }`."""
    match = re.search(r"\n\s*params\s*:\s*\{", declaration.masked)
    if not match:
        return []
    open_at = match.end() - 1
    return top_level_keys(declaration.masked[open_at : matching(declaration.masked, open_at)])


def property_value(declaration: Declaration, path: str) -> str | None:
    """The original text after `name:` on its line, the first time it appears in a declaration.

    A dotted path (`sku.name`) looks for each later name inside the object that follows the one before it.
    """
    start, end = 0, len(declaration.masked)
    names = path.split(".")
    for depth, name in enumerate(names):
        match = re.compile(rf"(?:^|[{{\s]){name}\s*:\s*([^\n]*)", re.MULTILINE).search(declaration.masked, start, end)
        if not match:
            return None
        if depth == len(names) - 1:
            return declaration.text[match.start(1) : match.end(1)].split("//")[0].strip()
        open_at = declaration.masked.find("{", match.start(1), match.end(1))
        if open_at < 0:
            return None
        start, end = open_at + 1, matching(declaration.masked, open_at) - 1
    return None


# ----------------------------------------------------------------------------------------------------------------
# azure.yaml: block mappings, scalars and literal block scalars only
# ----------------------------------------------------------------------------------------------------------------


def parse_yaml_subset(text: str) -> dict:
    """Parses the YAML subset azure.yaml uses: nested block mappings, plain or quoted scalars, `|` block scalars.

    Anything else (sequences, flow collections, anchors, tabs, uneven indentation, duplicate keys) raises
    ValueError naming the line, so a malformed file fails the test rather than being half-read.
    """
    lines = text.splitlines()
    root: dict = {}
    stack: list[list] = [[-1, root, None]]  # [indent of the owning key, mapping, indent of its children]
    index = 0
    while index < len(lines):
        raw = lines[index]
        number = index + 1
        index += 1
        content = raw.strip()
        if not content or content.startswith("#"):
            continue
        lead = raw[: len(raw) - len(raw.lstrip())]
        if "\t" in lead:
            raise ValueError(f"line {number}: tab in indentation")
        indent = len(lead)
        match = re.fullmatch(r"([A-Za-z_][\w.-]*):(?:[ ]+(.*))?", content)
        if not match:
            raise ValueError(f"line {number}: not a 'key: value' line: {raw!r}")
        while indent <= stack[-1][0]:
            stack.pop()
        owner = stack[-1]
        if owner[2] is None:
            owner[2] = indent
        elif owner[2] != indent:
            raise ValueError(f"line {number}: indented {indent}, its siblings {owner[2]}")
        key, value = match.group(1), match.group(2)
        mapping = owner[1]
        if key in mapping:
            raise ValueError(f"line {number}: duplicate key {key!r}")
        if value is None or value.startswith("#"):
            child: dict = {}
            mapping[key] = child
            stack.append([indent, child, None])
        elif value == "|":
            block: list[str] = []
            while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > indent):
                block.append(lines[index])
                index += 1
            while block and not block[-1].strip():
                block.pop()
            if not block:
                raise ValueError(f"line {number}: empty block scalar")
            margin = min(_indent(line) for line in block if line.strip())
            mapping[key] = "\n".join(line[margin:] for line in block) + "\n"
        else:
            mapping[key] = _scalar(value, number)
    return root


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _scalar(value: str, number: int) -> str:
    if value[0] in "'\"":
        quote = value[0]
        end = value.find(quote, 1)
        if end < 0:
            raise ValueError(f"line {number}: unterminated quoted scalar")
        return value[1:end]
    if value[0] in "[{&*!|>%@`":
        raise ValueError(f"line {number}: unsupported YAML construct {value!r}")
    return value.split(" #")[0].strip()
