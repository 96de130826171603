"""The timeline drawn as an SVG picture: stages as lanes, each move as a mark and an arrow.

Lanes run left to right, one row per stage (the first stage at the top); each move is a
column in time order: an arrow from the lane it came from to the lane it moved (or tried to
move), a round mark for a promotion, a square for a rollback, coloured by outcome (moved,
unchanged, refused or failed), with a ``<title>`` tooltip saying who, when, the gates and
their results, and the approver. A short caption under each mark names the user.

Guarantees: pure (a ``Timeline`` in, a string out); every piece of text from the trail is
XML-escaped, so a user name or message can never inject markup; no external assets, fonts
or scripts. It must not read the trail or decide what a user may see.
"""

from __future__ import annotations

from html import escape

from spawner.hubservice.timeline import Move, Timeline

LANE_HEIGHT = 56
LEFT = 90
STEP = 34
TOP = 24
COLOURS = {"promoted": "#1a7f37", "rolled-back": "#8250df", "unchanged": "#6e7781",
           "refused": "#cf222e", "failed": "#bc4c00"}


def _y(lanes: tuple[str, ...], stage: str) -> int:
    index = lanes.index(stage) if stage in lanes else len(lanes) - 1
    return TOP + index * LANE_HEIGHT + LANE_HEIGHT // 2


def _mark(move: Move, x: int, y: int, colour: str) -> str:
    title = f"<title>{escape(move.summary())}</title>"
    if move.action == "rollback":
        shape = (f'<rect x="{x - 7}" y="{y - 7}" width="14" height="14" fill="{colour}"'
                 f' class="move {escape(move.outcome)}">{title}</rect>')
    else:
        fill = colour if move.moved else "#ffffff"
        shape = (f'<circle cx="{x}" cy="{y}" r="7" fill="{fill}" stroke="{colour}"'
                 f' stroke-width="2" class="move {escape(move.outcome)}">{title}</circle>')
    caption = escape((move.user or "?")[:10])
    return (f'{shape}<text x="{x}" y="{y + 20}" font-size="9" text-anchor="middle"'
            f' fill="#57606a">{caption}</text>')


def _arrow(move: Move, lanes: tuple[str, ...], x: int, colour: str) -> str:
    if not move.from_stage or move.from_stage == move.to_stage:
        return ""
    y1, y2 = _y(lanes, move.from_stage), _y(lanes, move.to_stage)
    dash = "" if move.moved else ' stroke-dasharray="3 3"'
    return (f'<line x1="{x - STEP // 2}" y1="{y1}" x2="{x}" y2="{y2 - 8 if y2 > y1 else y2 + 8}"'
            f' stroke="{colour}" stroke-width="1.5"{dash} marker-end="url(#arrow)"/>')


def render_svg(timeline: Timeline) -> str:
    """The timeline as one ``<svg>`` element (inline in the page, or served alone)."""
    lanes = timeline.lanes or ("(no stages)",)
    width = LEFT + STEP * (len(timeline.moves) + 1)
    height = TOP + LANE_HEIGHT * len(lanes) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="{escape("promotion timeline of " + timeline.project)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6"'
        ' markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"'
        ' fill="#57606a"/></marker></defs>',
    ]
    for i, lane in enumerate(lanes):
        y = TOP + i * LANE_HEIGHT + LANE_HEIGHT // 2
        parts.append(f'<line x1="{LEFT - 10}" y1="{y}" x2="{width - 4}" y2="{y}"'
                     ' stroke="#d0d7de" stroke-width="1"/>')
        parts.append(f'<text x="8" y="{y + 4}" font-size="13" font-weight="600"'
                     f' class="lane">{escape(lane)}</text>')
    for column, move in enumerate(timeline.moves):
        x = LEFT + STEP * (column + 1) - STEP // 2
        colour = COLOURS.get(move.outcome, "#57606a")
        parts.append(_arrow(move, lanes, x, colour))
        parts.append(_mark(move, x, _y(lanes, move.to_stage), colour))
    if not timeline.moves:
        parts.append(f'<text x="{LEFT}" y="{TOP - 8}" font-size="12" fill="#57606a">'
                     "no promotions recorded yet</text>")
    parts.append("</svg>")
    return "".join(parts)
