//! Pipeline problems for people (snippets with a label and a hint), for tools (JSON) and for
//! GitHub Actions (workflow annotations).

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use crate::spec::{Diagnostic, Sources};

/// One diagnostic with its file's text, as miette renders it.
struct Snippet<'a> {
    diagnostic: &'a Diagnostic,
    source: NamedSource<String>,
}

impl fmt::Debug for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.diagnostic.message)
    }
}

impl fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.diagnostic.message)
    }
}

impl std::error::Error for Snippet<'_> {}

impl miette::Diagnostic for Snippet<'_> {
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let at = &self.diagnostic.location;
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some("here".into()),
            at.offset,
            at.len,
        ))))
    }
}

/// Renders problems as text: a header line `file:line:col: message`, then the snippet.
pub fn text(diagnostics: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&format!("{}: error[{}]: {}\n", d.location, d.problem.code(), d.message));
        let text = sources.text(&d.location.file).unwrap_or_default().to_string();
        let snippet = Snippet {
            diagnostic: d,
            source: NamedSource::new(d.location.file.display().to_string(), text),
        };
        if handler.render_report(&mut out, &snippet).is_err() {
            out.push_str(&format!("  (no snippet for {})\n", d.location));
        }
        out.push('\n');
    }
    out
}

/// Escapes a GitHub workflow command value.
fn github_escape(s: &str, property: bool) -> String {
    let s = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    if property {
        s.replace(':', "%3A").replace(',', "%2C")
    } else {
        s
    }
}

/// Renders problems as GitHub Actions annotations, one `::error` line each.
pub fn github(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            let mut message = d.message.clone();
            if let Some(hint) = &d.hint {
                message.push_str(&format!("\n{hint}"));
            }
            format!(
                "::error file={},line={},col={},title={}::{}\n",
                github_escape(&d.location.file.display().to_string(), true),
                d.location.line,
                d.location.column,
                github_escape(&format!("sluice {}", d.problem.code()), true),
                github_escape(&message, false)
            )
        })
        .collect()
}
