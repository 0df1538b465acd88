//! Make-style dependency files, as `clang -MD -MF` writes them: which headers a translation unit read.
//!
//! The driver recompiles a translation unit when any file it depends on changes, so editing a header
//! recompiles exactly its users. The format is make's: `target: dep dep \` with backslash line continuations,
//! `\ ` for a space inside a path, `\#` for `#`, and `$$` for `$`.

use std::path::PathBuf;

/// The prerequisites of the first rule in a depfile, in order, without duplicates.
///
/// Returns `None` when the text holds no rule (no unescaped `:`), which means the file is not a depfile.
pub fn parse(text: &str) -> Option<Vec<PathBuf>> {
    let words = split_words(text);
    let colon = words.iter().position(|w| matches!(w, Word::Colon))?;
    let mut deps: Vec<PathBuf> = Vec::new();
    for word in &words[colon + 1..] {
        match word {
            Word::Path(path) => {
                let path = PathBuf::from(path);
                if !deps.contains(&path) {
                    deps.push(path);
                }
            }
            // A second rule (clang writes one per file with `-MP`): its targets repeat the prerequisites.
            Word::Colon | Word::Newline => break,
        }
    }
    Some(deps)
}

#[derive(Debug, PartialEq)]
enum Word {
    Path(String),
    Colon,
    Newline,
}

/// Splits depfile text into paths, rule separators and (unescaped) newlines.
fn split_words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let flush = |current: &mut String, words: &mut Vec<Word>| {
        if !current.is_empty() {
            words.push(Word::Path(std::mem::take(current)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some('\n') => {
                    chars.next();
                    flush(&mut current, &mut words);
                }
                Some('\r') => {
                    chars.next();
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    flush(&mut current, &mut words);
                }
                Some(&next @ (' ' | '#' | '\\')) => {
                    chars.next();
                    current.push(next);
                }
                _ => current.push('\\'),
            },
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                current.push('$');
            }
            // A colon ends the targets unless it is part of a path (a Windows drive letter never appears
            // here, but `a:b` inside a word does not occur in clang's output either, so a colon followed by
            // whitespace or the end is the rule separator).
            ':' if chars.peek().is_none_or(|n| n.is_whitespace()) => {
                flush(&mut current, &mut words);
                words.push(Word::Colon);
            }
            '\n' => {
                flush(&mut current, &mut words);
                words.push(Word::Newline);
            }
            c if c.is_whitespace() => flush(&mut current, &mut words),
            c => current.push(c),
        }
    }
    flush(&mut current, &mut words);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        parse(text).unwrap().into_iter().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn reads_clangs_output() {
        assert_eq!(paths("x.o: x.c a.h\n"), ["x.c", "a.h"]);
        assert_eq!(paths("x.o: x.c \\\n  /usr/include/a.h \\\n  b.h\n"), ["x.c", "/usr/include/a.h", "b.h"]);
    }

    #[test]
    fn unescapes_spaces_hashes_and_dollars() {
        assert_eq!(paths("y.o: sp\\ ace/y\\ z.c a\\#1.h cost$$.h"), ["sp ace/y z.c", "a#1.h", "cost$.h"]);
    }

    #[test]
    fn stops_at_the_phony_rules_of_mp() {
        assert_eq!(paths("x.o: x.c a.h\n\na.h:\n"), ["x.c", "a.h"]);
    }

    #[test]
    fn drops_duplicates_and_handles_crlf() {
        assert_eq!(paths("x.o: x.c a.h \\\r\n a.h\r\n"), ["x.c", "a.h"]);
    }

    #[test]
    fn text_without_a_rule_is_not_a_depfile() {
        assert_eq!(parse("just some words\n"), None);
        assert_eq!(parse(""), None);
    }
}
