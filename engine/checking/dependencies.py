"""Which rules' conditions read what other rules' actions write (LANGUAGE.md 3.6).

Rule A depends on rule B when A's `if` (segments included) reads a tag that B tags or untags,
or reads `customer.points` and B gives points. A tag is read by name in `"vip" in
customer.tags`, `"vip" not in customer.tags` and `customer.tags contains "vip"`; any other use
of `customer.tags` reads every tag. A cycle of this relation (A → … → A) is an error; without
cycles the relation orders evaluation (`strata`).

The amounts of `points` read values as of the due time too (`points 0 - customer.points`):
a rule whose amount reads what other rules give comes after them (`amount_edges`). A cycle
through amounts alone (a rule whose amount reads the points it gives, or rules whose amounts
read each other's) is no error: its rules are evaluated together, in the order of their due
times (`layers` keeps each such cycle in one stratum; `engine.evaluation.evaluate` takes it in
rounds). A cycle through a condition is an error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import TopologicalSorter

from engine.language import ast

ALL_TAGS = "*"


@dataclass
class Effects:
    """The tags (ALL_TAGS: any) and points a condition reads, or a rule's actions write."""

    tags: set[str] = field(default_factory=set)
    points: bool = False


def reads(expr: ast.Expr | None, segments: Mapping[str, ast.Segment]) -> Effects:
    found = Effects()
    _reads(expr, segments, found, set())
    return found


def _is_tags(node: ast.Expr) -> bool:
    return isinstance(node, ast.Ref) and node.entity == "customer" and node.name == "tags"


def _reads(
    node: ast.Expr | None,
    segments: Mapping[str, ast.Segment],
    found: Effects,
    seen: set[str],
) -> None:
    match node:
        case None:
            return
        case ast.Ref(entity="customer", name="tags"):
            found.tags.add(ALL_TAGS)
        case ast.Ref(entity="customer", name="points"):
            found.points = True
        case ast.Compare(op="in" | "not in", left=ast.String(value=tag), right=right) if _is_tags(
            right
        ):
            found.tags.add(tag)
        case ast.Compare(op="contains", left=left, right=ast.String(value=tag)) if _is_tags(left):
            found.tags.add(tag)
        case ast.InSegment(segment=name):
            if name in segments and name not in seen:
                seen.add(name)
                _reads(segments[name].condition, segments, found, seen)
        case ast.Compare() | ast.Arith():
            _reads(node.left, segments, found, seen)
            _reads(node.right, segments, found, seen)
        case ast.Between():
            for part in (node.value, node.low, node.high):
                _reads(part, segments, found, seen)
        case ast.IsSet():
            _reads(node.value, segments, found, seen)
        case ast.Negate() | ast.Not():
            _reads(node.operand, segments, found, seen)
        case ast.Logic():
            for operand in node.operands:
                _reads(operand, segments, found, seen)
        case ast.ListValue():
            for item in node.items:
                _reads(item, segments, found, seen)


def writes(rule: ast.Rule) -> Effects:
    found = Effects()
    for action in rule.actions:
        if isinstance(action, ast.TagAction):
            found.tags.add(action.tag)
        elif isinstance(action, ast.Points):
            found.points = True
    return found


@dataclass(frozen=True)
class Edge:
    """`reader` depends on `writer` because of `what` (a tag name, ALL_TAGS or "points")."""

    reader: int
    writer: int
    what: str


def edges(rules: Sequence[ast.CheckedRule], segments: Mapping[str, ast.Segment]) -> list[Edge]:
    """Every dependency between the rules, by position, with one reason each."""
    written = writers(rules)
    found = []
    for rule in rules:
        found += edges_from(rule.position, reads(rule.rule.condition, segments), written)
    return found


def amount_reads(rule: ast.Rule) -> Effects:
    """What the amounts of the rule's `points` actions read."""
    found = Effects()
    for action in rule.actions:
        if isinstance(action, ast.Points):
            _reads(action.amount, {}, found, set())
    return found


def amount_edges(rules: Sequence[ast.CheckedRule]) -> list[Edge]:
    """The dependencies of rules on the rules writing what their amounts read (their own
    included: `points 0 - customer.points` reads the points the rule gave before)."""
    written = writers(rules)
    return [
        edge
        for rule in rules
        for edge in edges_from(rule.position, amount_reads(rule.rule), written)
    ]


def condition_cycles(
    rules: Sequence[ast.CheckedRule], segments: Mapping[str, ast.Segment]
) -> list[list[int]]:
    """The rules (positions) of each cycle through a condition: a condition that depends on
    its own rule's acting (LANGUAGE.md 3.6), directly, through other rules' conditions, or
    through the points their amounts give.

    Worked out on two nodes per rule, whether it acts (`2 × position`) and the points it gives
    (`2 × position + 1`): an amount carries only points, so a rule whose condition reads a tag
    of a rule whose amount reads its points depends on that tag's rule acting, not on itself."""
    written = writers(rules)
    givers = [position for position, wrote in written if wrote.points]
    links: list[Edge] = []
    for rule in rules:
        acts, gives = 2 * rule.position, 2 * rule.position + 1
        read = reads(rule.rule.condition, segments)
        for writer, wrote in written:
            tags = wrote.tags if ALL_TAGS in read.tags else read.tags & wrote.tags
            if tags:
                links.append(Edge(acts, 2 * writer, min(tags)))
            if read.points and wrote.points:
                links += [Edge(acts, 2 * writer, "points"), Edge(acts, 2 * writer + 1, "points")]
        if rule.position in givers:
            links.append(Edge(gives, acts, "acting"))
        if amount_reads(rule.rule).points:
            for writer in givers:
                links += [Edge(gives, 2 * writer, "points"), Edge(gives, 2 * writer + 1, "points")]
    nodes = [node for rule in rules for node in (2 * rule.position, 2 * rule.position + 1)]
    return [
        sorted({node // 2 for node in component})
        for component in cycles(nodes, links)
        if any(node % 2 == 0 for node in component)
    ]


def writers(rules: Sequence[ast.CheckedRule]) -> list[tuple[int, Effects]]:
    """What each rule writes, by position."""
    return [(rule.position, writes(rule.rule)) for rule in rules]


def edges_from(reader: int, read: Effects, written: Sequence[tuple[int, Effects]]) -> list[Edge]:
    """The dependencies of the rule at `reader` on the rules writing what it reads, `read`
    (`written`: `writers` of the rules)."""
    found = []
    for writer, wrote in written:
        what = _overlap(read, wrote)
        if what is not None:
            found.append(Edge(reader, writer, what))
    return found


def _overlap(read: Effects, wrote: Effects) -> str | None:
    if read.points and wrote.points:
        return "points"
    if ALL_TAGS in read.tags and wrote.tags:
        return min(wrote.tags)
    common = read.tags & wrote.tags
    return min(common) if common else None


def reaches(links: Sequence[Edge], starts: Iterable[int], goal: int) -> bool:
    """Whether `goal` is one of `starts` or depends on one of them through `links`: then links
    from `goal` to them would close a cycle."""
    successors: dict[int, list[int]] = defaultdict(list)
    for edge in links:
        successors[edge.reader].append(edge.writer)
    seen: set[int] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo += successors[node]
    return False


def cycles(nodes: Sequence[int], links: Sequence[Edge]) -> list[list[int]]:
    """The strongly connected components that are cycles (Tarjan), each sorted, in order."""
    successors: dict[int, list[int]] = {n: [] for n in nodes}
    for edge in links:
        successors[edge.reader].append(edge.writer)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    found: list[list[int]] = []

    def visit(node: int) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in successors[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in successors[node]:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return sorted(found)


def strata(
    rules: Sequence[ast.CheckedRule], segments: Mapping[str, ast.Segment]
) -> list[list[ast.CheckedRule]]:
    """The rules in evaluation order: each stratum depends only on earlier ones (by their
    conditions and amounts) and on the rules of its own cycles; within a stratum, by
    position."""
    return layers(rules, edges(rules, segments) + amount_edges(rules))


def layers(rules: Sequence[ast.CheckedRule], links: Sequence[Edge]) -> list[list[ast.CheckedRule]]:
    """`strata` for the dependencies `links` between the rules; the rules of a cycle (`cycles`,
    through amounts only once `check` passed) in one stratum."""
    by_position = {r.position: r for r in rules}
    leader = {position: position for position in by_position}
    for members in cycles(list(by_position), links):
        for position in members:
            leader[position] = members[0]
    graph: dict[int, set[int]] = {leader[p]: set() for p in by_position}
    for edge in links:
        if leader[edge.reader] != leader[edge.writer]:
            graph[leader[edge.reader]].add(leader[edge.writer])
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    found = []
    while sorter.is_active():
        ready = set(sorter.get_ready())
        found.append([by_position[p] for p in sorted(by_position) if leader[p] in ready])
        sorter.done(*ready)
    return found
