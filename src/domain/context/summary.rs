//! The token-bounded summary of a ticket and its full context, which agents read first.
//!
//! It opens with the ticket itself and must never exceed its token budget, whatever the input.
//! Phases are shown newest first, by the time they were aggregated at (parsed with chrono); when
//! not everything fits, the decisions and risks of every phase are kept before anything else.
//! This module must not store anything, read the clock or fail: entries it cannot read are
//! skipped.

use std::cmp::Reverse;
use std::collections::HashSet;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::aggregate::text_of;
use super::tokens::{count_tokens, truncate_to_tokens};
use crate::domain::phase::Phase;
use crate::domain::ticket::Priority;

/// The ticket a summary is about, which it opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketBrief<'a> {
    /// The ticket's title, shown in full whenever the budget allows.
    pub title: &'a str,
    /// How urgent the ticket is, shown beside the title.
    pub priority: Priority,
    /// What the ticket asks for; as much of it is shown as fits.
    pub description: &'a str,
}

/// A digest of a ticket and its context, and its exact size in tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The digest itself: a `# <title> (priority <P>)` line and the description, then one
    /// `## <phase>` section per phase, newest first.
    pub text: String,
    /// The cl100k_base token count of `text`, exactly.
    pub tokens: usize,
}

/// A readable digest of the ticket and of every phase in `full_context`, never more than
/// `max_tokens` cl100k_base tokens.
///
/// It opens with the ticket, so it is never empty even when no phase has any content yet: a
/// `# <title> (priority <P>)` line, then the description on one line. The title line comes first
/// of all; when it does not fit, the title is cut with "…" (keeping the priority while a few
/// tokens of title fit beside it), so only a budget of a token or two, too small for even that,
/// gives an empty summary. The description is guaranteed up to half of the room the title leaves
/// and takes whatever the phases leave beyond that; it is cut with "…" when it does not fit, or
/// left out when only a few tokens remain for it.
///
/// When the phases do not all fit, decisions and risks are kept first (newest phases first), then
/// gate outcomes, task summaries, notes and artifacts; entries of a line are cut from its end, an
/// entry too long for the room left is truncated with "…", and a last line says how many entries
/// were left out when it fits. Decisions, risks and notes that read alike within a phase are shown
/// once. Entries that are not well-formed phase contexts are summarized as far as they can be
/// read, or skipped.
pub fn summarize(
    ticket: &TicketBrief<'_>,
    full_context: &Map<String, Value>,
    max_tokens: usize,
) -> Summary {
    // No entry can usefully be longer than the whole budget; cutting entries to a length that
    // surely holds `max_tokens` tokens bounds the work on huge inputs.
    let entry_chars = max_tokens.saturating_mul(16).saturating_add(64);
    let title = title_line(ticket, entry_chars, max_tokens);
    // What is left once the title line and its line break are paid for.
    let room = max_tokens.saturating_sub(count_tokens(&title) + 1);
    let description = clean(ticket.description, entry_chars);
    let description_share = if description.is_empty() {
        0
    } else {
        (count_tokens(&description) + 1).min(room / 2)
    };

    let mut sections: Vec<Section> = full_context
        .iter()
        .filter_map(|(key, value)| Section::read(key, value, entry_chars))
        .collect();
    sections.sort_by_key(|s| Reverse(s.recency));

    let plan = Plan::choose(&sections, room - description_share);
    let mut header = title;
    if let Some(line) = description_line(&description, room.saturating_sub(plan.cost())) {
        header.push('\n');
        header.push_str(&line);
    }
    plan.into_summary(&sections, header, max_tokens)
}

/// The kinds of line in a section, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Line {
    Decisions,
    Risks,
    GateBlockers,
    Tasks,
    Notes,
    Artifacts,
}

impl Line {
    const ALL: [Line; 6] = [
        Line::Decisions,
        Line::Risks,
        Line::GateBlockers,
        Line::Tasks,
        Line::Notes,
        Line::Artifacts,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Line::Decisions => "Decisions: ",
            Line::Risks => "Risks: ",
            Line::GateBlockers => "Gate blockers: ",
            Line::Tasks => "Tasks: ",
            Line::Notes => "Notes: ",
            Line::Artifacts => "Artifacts: ",
        }
    }
}

/// What is kept first when not everything fits: each tier over all sections, newest first.
const TIERS: [&[Line]; 5] = [
    &[Line::Decisions, Line::Risks],
    &[Line::GateBlockers],
    &[Line::Tasks],
    &[Line::Notes],
    &[Line::Artifacts],
];

/// The most entries of one line (one phase's artifacts, say) the summary considers: the newest
/// ones. The rest only count as omitted, so summarizing stays quick however much a phase
/// collected.
const MAX_ENTRIES_PER_LINE: usize = 32;

/// The longest run of non-blank characters kept in an entry.
const RUN_CHARS: usize = 200;

/// The longest phase name or gate status shown in a heading.
const NAME_CHARS: usize = 100;

/// The smallest room worth filling with a truncated entry; less would be mostly "…".
const MIN_TRUNCATED_TOKENS: usize = 6;

/// One entry of a line, with its token cost measured once.
#[derive(Debug)]
struct Item {
    text: String,
    /// Tokens of the entry alone (as the first of its line).
    first_cost: usize,
    /// Tokens of "; " followed by the entry (as a later one).
    next_cost: usize,
}

impl Item {
    fn new(text: String) -> Self {
        let first_cost = count_tokens(&text);
        let next_cost = count_tokens(&format!("; {text}"));
        Self {
            text,
            first_cost,
            next_cost,
        }
    }
}

/// One phase of the full context, read tolerantly and rendered into entries.
#[derive(Debug)]
struct Section {
    heading: String,
    heading_cost: usize,
    /// Whether the heading carries a gate outcome (an entry of its own for counting).
    has_gate: bool,
    /// Sort key: newest aggregation first; ties broken by later position in the sequence.
    recency: (Option<DateTime<FixedOffset>>, usize),
    lines: [Vec<Item>; 6],
    /// Older entries left out before counting (beyond `MAX_ENTRIES_PER_LINE` per line).
    dropped: usize,
}

impl Section {
    fn read(key: &str, value: &Value, entry_chars: usize) -> Option<Section> {
        let fields = value.as_object()?;
        let phase = fields
            .get("phase_id")
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<Phase>().ok())
            .or_else(|| Phase::from_context_key(key));
        let name = match phase {
            Some(phase) => phase.short_name().to_owned(),
            None => clean(key.strip_suffix("_phase").unwrap_or(key), NAME_CHARS),
        };

        let gate = fields.get("gate").and_then(Value::as_object);
        let gate_status = gate.map(|g| match g.get("gate_status") {
            Some(Value::String(status)) => clean(status, NAME_CHARS),
            Some(other) if !other.is_null() => clean(&other.to_string(), NAME_CHARS),
            _ => "unknown".to_owned(),
        });
        let heading = match &gate_status {
            Some(status) => format!("## {name} (gate {status})"),
            None => format!("## {name}"),
        };

        let rank = phase.map_or(0, |p| {
            Phase::ALL.iter().position(|q| *q == p).unwrap_or(0) + 1
        });
        let time = fields
            .get("aggregated_at")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);

        let mut lines: [Vec<Item>; 6] = Default::default();
        let mut dropped = 0;
        for line in Line::ALL {
            let entries: Vec<String> = match line {
                Line::Decisions => entries_of(fields.get("decisions"), render_entry, entry_chars),
                Line::Risks => entries_of(fields.get("risks"), render_entry, entry_chars),
                Line::GateBlockers => entries_of(
                    gate.and_then(|g| g.get("blocking_reasons")),
                    render_entry,
                    entry_chars,
                ),
                Line::Tasks => entries_of(fields.get("tasks"), render_task, entry_chars),
                Line::Notes => entries_of(fields.get("notes"), render_entry, entry_chars),
                Line::Artifacts => {
                    entries_of(fields.get("artifacts"), render_artifact, entry_chars)
                }
            };
            let mut entries = entries;
            if matches!(line, Line::Decisions | Line::Risks | Line::Notes) {
                let mut seen = HashSet::new();
                entries.retain(|entry| seen.insert(entry.clone()));
            }
            if entries.len() > MAX_ENTRIES_PER_LINE {
                let excess = entries.len() - MAX_ENTRIES_PER_LINE;
                dropped += excess;
                entries.drain(..excess);
            }
            lines[line as usize] = entries.into_iter().map(Item::new).collect();
        }

        let has_gate = gate_status.is_some();
        if !has_gate && lines.iter().all(Vec::is_empty) {
            return None;
        }
        Some(Section {
            heading_cost: count_tokens(&heading),
            heading,
            has_gate,
            recency: (time, rank),
            lines,
            dropped,
        })
    }

    fn items(&self, line: Line) -> &[Item] {
        &self.lines[line as usize]
    }

    /// Every entry this section could show, its gate outcome included.
    fn item_count(&self) -> usize {
        usize::from(self.has_gate) + self.lines.iter().map(Vec::len).sum::<usize>() + self.dropped
    }

    /// What showing all of this section would cost, newlines included.
    fn full_cost(&self) -> usize {
        let mut cost = self.heading_cost + 1;
        for line in Line::ALL {
            let items = self.items(line);
            if let Some((first, rest)) = items.split_first() {
                cost += count_tokens(line.prefix())
                    + first.first_cost
                    + rest.iter().map(|i| i.next_cost).sum::<usize>()
                    + 1;
            }
        }
        cost
    }
}

fn entries_of(
    value: Option<&Value>,
    render: fn(&Value) -> Option<String>,
    max_chars: usize,
) -> Vec<String> {
    let rendered: Vec<Option<String>> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(render).collect(),
        Some(other) => vec![render(other)],
    };
    rendered
        .into_iter()
        .flatten()
        .map(|entry| clean(&entry, max_chars))
        .filter(|e| !e.is_empty())
        .collect()
}

fn render_entry(value: &Value) -> Option<String> {
    text_of(value)
}

fn render_task(value: &Value) -> Option<String> {
    let Some(task_type) = value.get("task_type").and_then(Value::as_str) else {
        return render_entry(value);
    };
    Some(match value.get("summary").and_then(text_of) {
        Some(summary) if !summary.trim().is_empty() => {
            format!("{task_type}: {summary}")
        }
        _ => task_type.to_owned(),
    })
}

fn render_artifact(value: &Value) -> Option<String> {
    let Some(artifact_type) = value.get("artifact_type").and_then(Value::as_str) else {
        return render_entry(value);
    };
    Some(match value.get("artifact_path").and_then(Value::as_str) {
        Some(path) if !path.trim().is_empty() => format!("{artifact_type} ({path})"),
        _ => artifact_type.to_owned(),
    })
}

/// Makes an entry fit on one line and keeps it cheap to tokenize: whitespace runs (line breaks
/// included) become one space, a run of more than [`RUN_CHARS`] characters without a space is cut
/// with "…" (such runs are never prose, and tokenizing them costs quadratic time), and the whole
/// is cut with "…" after `max_chars` characters.
fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut chars = 0;
    let mut run = 0;
    let mut space_pending = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space_pending = chars > 0;
            run = 0;
            continue;
        }
        if run > RUN_CHARS {
            continue;
        }
        if chars + usize::from(space_pending) >= max_chars {
            out.push('…');
            break;
        }
        if space_pending {
            out.push(' ');
            chars += 1;
            space_pending = false;
        }
        run += 1;
        if run > RUN_CHARS {
            out.push('…');
        } else {
            out.push(c);
        }
        chars += 1;
    }
    out
}

/// One line chosen for the summary.
#[derive(Debug)]
struct Chosen {
    section: usize,
    /// `None` for the section heading.
    line: Option<Line>,
    text: String,
    /// Estimated tokens, newline included.
    cost: usize,
}

/// The lines chosen for the summary, in the order they were chosen (most important first).
#[derive(Debug, Default)]
struct Plan {
    chosen: Vec<Chosen>,
    omitted: usize,
}

impl Plan {
    fn choose(sections: &[Section], max_tokens: usize) -> Plan {
        let mut plan = Plan {
            omitted: sections.iter().map(|section| section.dropped).sum(),
            ..Plan::default()
        };
        let total_items: usize = sections.iter().map(Section::item_count).sum();
        let full_cost: usize = sections.iter().map(Section::full_cost).sum();
        // Room for the "(… N more items omitted)" line, kept only when something must go and the
        // budget is large enough that the notice does not crowd out the content itself.
        let reserve = if full_cost > max_tokens || plan.omitted > 0 {
            count_tokens(&omitted_notice(total_items)) + 1
        } else {
            0
        };
        let budget = if reserve * 4 <= max_tokens {
            max_tokens - reserve
        } else {
            max_tokens
        };

        let mut used = 0;
        let mut heading_shown = vec![false; sections.len()];
        for (tier_index, tier) in TIERS.iter().enumerate() {
            for (index, section) in sections.iter().enumerate() {
                if tier_index == 1
                    && section.has_gate
                    && !heading_shown[index]
                    && used + section.heading_cost < budget
                {
                    // The heading carries the gate outcome.
                    plan.push_heading(sections, index, &mut heading_shown, &mut used);
                }
                for &line in tier.iter() {
                    let items = section.items(line);
                    if items.is_empty() {
                        continue;
                    }
                    let heading_cost = if heading_shown[index] {
                        0
                    } else {
                        section.heading_cost + 1
                    };
                    let room = budget.saturating_sub(used + heading_cost);
                    let (text, cost, shown) = pack(line, items, room);
                    plan.omitted += items.len() - shown;
                    if shown == 0 {
                        continue;
                    }
                    if !heading_shown[index] {
                        plan.push_heading(sections, index, &mut heading_shown, &mut used);
                    }
                    used += cost;
                    plan.chosen.push(Chosen {
                        section: index,
                        line: Some(line),
                        text,
                        cost,
                    });
                }
            }
        }
        // Entries were counted line by line; gate outcomes live in headings.
        plan.omitted += sections
            .iter()
            .zip(&heading_shown)
            .filter(|(section, shown)| section.has_gate && !**shown)
            .count();
        plan
    }

    fn push_heading(
        &mut self,
        sections: &[Section],
        index: usize,
        heading_shown: &mut [bool],
        used: &mut usize,
    ) {
        let section = &sections[index];
        heading_shown[index] = true;
        *used += section.heading_cost + 1;
        self.chosen.push(Chosen {
            section: index,
            line: None,
            text: section.heading.clone(),
            cost: section.heading_cost + 1,
        });
    }

    /// What the chosen lines are estimated to cost, with the omission notice when something was
    /// left out.
    fn cost(&self) -> usize {
        let notice = if self.omitted > 0 {
            count_tokens(&omitted_notice(self.omitted)) + 1
        } else {
            0
        };
        self.chosen.iter().map(|c| c.cost).sum::<usize>() + notice
    }

    /// Renders `header` and then the chosen lines in display order, and makes the budget hold
    /// exactly. The header was made to fit on its own, so lines are given back before it is ever
    /// touched.
    fn into_summary(mut self, sections: &[Section], header: String, max_tokens: usize) -> Summary {
        let header_cost = if header.is_empty() {
            0
        } else {
            count_tokens(&header) + 1
        };
        let used: usize = header_cost + self.chosen.iter().map(|c| c.cost).sum::<usize>();
        let notice = (self.omitted > 0).then(|| omitted_notice(self.omitted));
        let mut notice = notice.filter(|n| used + count_tokens(n) < max_tokens);

        loop {
            let text = self.render(&header, notice.as_deref());
            let tokens = count_tokens(&text);
            if tokens <= max_tokens {
                return Summary { text, tokens };
            }
            // Estimates are per line; joined text can tokenize slightly differently. Give back
            // the least important thing until the whole fits.
            let over = tokens - max_tokens;
            if notice.take().is_some() {
                continue;
            }
            let Some(last) = self.chosen.last_mut() else {
                // Only the header is left, and it was made to fit: unreachable, but should it
                // ever not fit, cut it rather than loop.
                let (text, tokens) = truncate_to_tokens(&header, max_tokens);
                return Summary { text, tokens };
            };
            if last.line.is_some() && last.cost > over + MIN_TRUNCATED_TOKENS {
                let (text, cost) = truncate_to_tokens(&last.text, last.cost - 1 - over);
                last.text = text;
                last.cost = cost + 1;
                if cost > 0 {
                    continue;
                }
            }
            let removed = self.chosen.pop();
            // A heading stays only while something of its section remains, unless it carries a
            // gate outcome (then it was chosen for its own sake and goes in its own turn).
            if let Some(Chosen {
                section,
                line: Some(_),
                ..
            }) = removed
            {
                let content_left = self
                    .chosen
                    .iter()
                    .any(|c| c.section == section && c.line.is_some());
                if !content_left && !sections[section].has_gate {
                    self.chosen.retain(|c| c.section != section);
                }
            }
        }
    }

    fn render(&self, header: &str, notice: Option<&str>) -> String {
        let mut order: Vec<&Chosen> = self.chosen.iter().filter(|c| !c.text.is_empty()).collect();
        order.sort_by_key(|c| (c.section, c.line));
        let mut lines: Vec<&str> = Some(header).filter(|h| !h.is_empty()).into_iter().collect();
        lines.extend(order.iter().map(|c| c.text.as_str()));
        if let Some(notice) = notice {
            lines.push(notice);
        }
        lines.join("\n")
    }
}

fn omitted_notice(count: usize) -> String {
    format!("(… {count} more items omitted)")
}

/// The summary's first line, `# <title> (priority <P>)`, at most `max_tokens` tokens. When it is
/// too long, the title is cut with "…" so that the priority still fits beside it; when not even
/// [`MIN_TRUNCATED_TOKENS`] of title would, the line itself is cut from its end.
fn title_line(ticket: &TicketBrief<'_>, max_chars: usize, max_tokens: usize) -> String {
    let title = clean(ticket.title, max_chars);
    let heading = if title.is_empty() {
        "#".to_owned()
    } else {
        format!("# {title}")
    };
    let priority = format!(" (priority {})", ticket.priority.as_str());
    let line = format!("{heading}{priority}");
    if count_tokens(&line) <= max_tokens {
        return line;
    }
    let mut room = max_tokens.saturating_sub(count_tokens(&priority));
    while room >= MIN_TRUNCATED_TOKENS {
        let (cut, _) = truncate_to_tokens(&heading, room);
        let candidate = format!("{cut}{priority}");
        let cost = count_tokens(&candidate);
        if cost <= max_tokens {
            return candidate;
        }
        room -= (cost - max_tokens).min(room);
    }
    truncate_to_tokens(&line, max_tokens).0
}

/// The description as the summary's second line, when `room` tokens (its line break included)
/// hold it or a fair part of it cut with "…"; `None` otherwise.
fn description_line(description: &str, room: usize) -> Option<String> {
    if description.is_empty() || room < 2 {
        return None;
    }
    let (text, _) = truncate_to_tokens(description, room - 1);
    if text == description {
        return Some(text);
    }
    (room > MIN_TRUNCATED_TOKENS && !text.is_empty() && text != "…").then_some(text)
}

/// Fills `room` tokens (newline included) with a line's prefix and as many whole entries as fit;
/// when the next entry does not fit but there is still fair room, it goes in truncated. Returns
/// the line, its estimated cost and how many entries it shows.
fn pack(line: Line, items: &[Item], room: usize) -> (String, usize, usize) {
    let prefix = line.prefix();
    let mut cost = count_tokens(prefix) + 1;
    if cost >= room {
        return (String::new(), 0, 0);
    }
    let mut text = prefix.to_owned();
    let mut shown = 0;
    for (index, item) in items.iter().enumerate() {
        let (piece_cost, separator) = if index == 0 {
            (item.first_cost, "")
        } else {
            (item.next_cost, "; ")
        };
        if cost + piece_cost <= room {
            text.push_str(separator);
            text.push_str(&item.text);
            cost += piece_cost;
            shown += 1;
            continue;
        }
        let left = room - cost;
        if left >= MIN_TRUNCATED_TOKENS {
            let (piece, piece_cost) =
                truncate_to_tokens(&format!("{separator}{}", item.text), left);
            if piece_cost > 0 && piece.trim_start_matches("; ") != "…" {
                text.push_str(&piece);
                cost += piece_cost;
                shown += 1;
            }
        }
        break;
    }
    if shown == 0 {
        return (String::new(), 0, 0);
    }
    (text, cost, shown)
}

/// When a phase was aggregated, from its RFC 3339 `aggregated_at` (surrounding whitespace
/// ignored), so that differently written times (another offset, more or fewer fractional digits)
/// still order by the instant they name. `None` if it is not such a time; such sections sort as
/// oldest.
fn parse_rfc3339(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text.trim()).ok()
}

#[cfg(test)]
mod tests;
