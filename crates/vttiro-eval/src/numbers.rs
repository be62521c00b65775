//! Spoken English numbers to digits, over tokens that are already lowercase and free of
//! punctuation other than `.`, `-`, `%` and currency signs.
//!
//! A number phrase is read as a sequence of groups. A group is one well-formed cardinal
//! ("two hundred and five", "twenty one", "three million"); a word that cannot continue the
//! group either starts the next group or ends the phrase. Adjacent groups made only of small
//! numbers are concatenated digit by digit, which is how years and phone numbers are spoken
//! ("nineteen eighty four" -> 1984, "one oh one" -> 101). A group that used "hundred" or a
//! scale word is a quantity and is never glued to its neighbours.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
    None,
    Ordinal,
    Plural,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Lexeme {
    Zero,
    /// "oh"/"o": a zero only between digits, an interjection anywhere else.
    Oh,
    Unit(u8),
    Teen(u8),
    Tens(u8),
    Hundred,
    /// A scale word as a power of ten (thousand = 3).
    Scale(u32),
    /// A number written in digits, with an optional leading currency or minus sign.
    Digits {
        sign: Option<char>,
        value: String,
    },
    And,
    Point,
}

const UNITS: [&str; 9] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
const UNIT_ORDINALS: [&str; 9] = [
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
];
// "ones" is deliberately absent: "the ones who" is far more common than "the 1s".
const UNIT_PLURALS: [&str; 9] = [
    "", "twos", "threes", "fours", "fives", "sixes", "sevens", "eights", "nines",
];
const TEENS: [&str; 10] = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TEEN_ORDINALS: [&str; 10] = [
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
];
const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [(&str, u32); 4] = [
    ("thousand", 3),
    ("million", 6),
    ("billion", 9),
    ("trillion", 12),
];

fn lex(token: &str) -> Option<(Lexeme, Ending)> {
    let plain = |lexeme| Some((lexeme, Ending::None));
    match token {
        "zero" => return plain(Lexeme::Zero),
        "zeroth" => return Some((Lexeme::Zero, Ending::Ordinal)),
        "oh" | "o" => return plain(Lexeme::Oh),
        "and" => return plain(Lexeme::And),
        "point" => return plain(Lexeme::Point),
        "hundred" => return plain(Lexeme::Hundred),
        "hundredth" => return Some((Lexeme::Hundred, Ending::Ordinal)),
        "hundreds" => return Some((Lexeme::Hundred, Ending::Plural)),
        _ => {}
    }
    for (i, digit) in (1u8..=9).enumerate() {
        if token == UNITS[i] {
            return plain(Lexeme::Unit(digit));
        }
        if token == UNIT_ORDINALS[i] {
            return Some((Lexeme::Unit(digit), Ending::Ordinal));
        }
        if !UNIT_PLURALS[i].is_empty() && token == UNIT_PLURALS[i] {
            return Some((Lexeme::Unit(digit), Ending::Plural));
        }
    }
    for (i, value) in (10u8..=19).enumerate() {
        if token == TEENS[i] {
            return plain(Lexeme::Teen(value));
        }
        if token == TEEN_ORDINALS[i] {
            return Some((Lexeme::Teen(value), Ending::Ordinal));
        }
        if token.strip_suffix('s') == Some(TEENS[i]) {
            return Some((Lexeme::Teen(value), Ending::Plural));
        }
    }
    for (i, value) in (2u8..=9).map(|t| t * 10).enumerate() {
        let stem = &TENS[i][..TENS[i].len() - 1];
        if token == TENS[i] {
            return plain(Lexeme::Tens(value));
        }
        if token.strip_prefix(stem) == Some("ieth") {
            return Some((Lexeme::Tens(value), Ending::Ordinal));
        }
        if token.strip_prefix(stem) == Some("ies") {
            return Some((Lexeme::Tens(value), Ending::Plural));
        }
    }
    for (name, exponent) in SCALES {
        if let Some(rest) = token.strip_prefix(name) {
            let ending = match rest {
                "" => Ending::None,
                "th" => Ending::Ordinal,
                "s" => Ending::Plural,
                _ => continue,
            };
            return Some((Lexeme::Scale(exponent), ending));
        }
    }
    lex_digits(token).map(|lexeme| (lexeme, Ending::None))
}

/// `42`, `2.5`, `$5`, `-3`, `.5`: optional sign, digits, optional decimal part.
fn lex_digits(token: &str) -> Option<Lexeme> {
    let mut chars = token.chars();
    let first = chars.clone().next()?;
    let sign = matches!(first, '$' | '£' | '€' | '¢' | '-').then_some(first);
    if sign.is_some() {
        chars.next();
    }
    let body = chars.as_str();
    let (integer, fraction) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let valid = match fraction {
        Some(f) => all_digits(f) && (integer.is_empty() || all_digits(integer)),
        None => all_digits(integer),
    };
    if !valid {
        return None;
    }
    let value = if integer.is_empty() {
        format!("0{body}")
    } else {
        body.to_string()
    };
    Some(Lexeme::Digits { sign, value })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Last {
    Start,
    Zero,
    Unit,
    Teen,
    Tens,
    Hundred,
    Scale,
}

/// One well-formed cardinal being read, e.g. "three million two hundred and five".
#[derive(Debug)]
struct Group {
    completed: u128,
    below_scale: u128,
    last: Last,
    hundred_below_scale: bool,
    smallest_scale: Option<u32>,
    is_quantity: bool,
}

impl Group {
    fn new() -> Self {
        Group {
            completed: 0,
            below_scale: 0,
            last: Last::Start,
            hundred_below_scale: false,
            smallest_scale: None,
            is_quantity: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.last == Last::Start
    }

    fn accepts(&self, lexeme: &Lexeme, next: Option<&Lexeme>, phrase_has_digits: bool) -> bool {
        use Last::*;
        match lexeme {
            Lexeme::Zero => self.is_empty(),
            Lexeme::Oh => {
                self.is_empty()
                    && phrase_has_digits
                    && matches!(next, Some(Lexeme::Zero | Lexeme::Oh | Lexeme::Unit(_)))
            }
            Lexeme::Unit(_) => matches!(self.last, Start | Tens | Hundred | Scale),
            Lexeme::Teen(_) | Lexeme::Tens(_) => matches!(self.last, Start | Hundred | Scale),
            Lexeme::Hundred => {
                matches!(self.last, Start | Unit | Teen | Tens) && !self.hundred_below_scale
            }
            Lexeme::Scale(exponent) => {
                matches!(self.last, Start | Unit | Teen | Tens | Hundred)
                    && self.smallest_scale.is_none_or(|s| *exponent < s)
            }
            Lexeme::And => {
                matches!(self.last, Hundred | Scale)
                    && matches!(
                        next,
                        Some(Lexeme::Unit(_) | Lexeme::Teen(_) | Lexeme::Tens(_))
                    )
            }
            Lexeme::Point | Lexeme::Digits { .. } => false,
        }
    }

    fn apply(&mut self, lexeme: &Lexeme) {
        match lexeme {
            Lexeme::Zero | Lexeme::Oh => self.last = Last::Zero,
            Lexeme::Unit(v) => {
                self.below_scale += u128::from(*v);
                self.last = Last::Unit;
            }
            Lexeme::Teen(v) => {
                self.below_scale += u128::from(*v);
                self.last = Last::Teen;
            }
            Lexeme::Tens(v) => {
                self.below_scale += u128::from(*v);
                self.last = Last::Tens;
            }
            Lexeme::Hundred => {
                self.below_scale = self.below_scale.max(1) * 100;
                self.hundred_below_scale = true;
                self.is_quantity = true;
                self.last = Last::Hundred;
            }
            Lexeme::Scale(exponent) => {
                self.completed += self.below_scale.max(1) * 10u128.pow(*exponent);
                self.below_scale = 0;
                self.hundred_below_scale = false;
                self.smallest_scale = Some(*exponent);
                self.is_quantity = true;
                self.last = Last::Scale;
            }
            Lexeme::And | Lexeme::Point | Lexeme::Digits { .. } => {}
        }
    }

    fn digits(&self) -> String {
        (self.completed + self.below_scale).to_string()
    }
}

fn starts_digit_run(lexeme: &Lexeme, next: Option<&Lexeme>) -> bool {
    match lexeme {
        Lexeme::Zero | Lexeme::Unit(_) | Lexeme::Teen(_) | Lexeme::Tens(_) => true,
        Lexeme::Oh => matches!(next, Some(Lexeme::Zero | Lexeme::Oh | Lexeme::Unit(_))),
        _ => false,
    }
}

fn is_single_digit_word(lexeme: Option<&Lexeme>) -> bool {
    matches!(lexeme, Some(Lexeme::Zero | Lexeme::Oh | Lexeme::Unit(_)))
}

fn single_digit(lexeme: &Lexeme) -> Option<char> {
    match lexeme {
        Lexeme::Zero | Lexeme::Oh => Some('0'),
        Lexeme::Unit(v) => char::from_digit(u32::from(*v), 10),
        _ => None,
    }
}

/// Multiplies a decimal written as text by `10^exponent` without floating point, so that
/// "2.5 million" is exactly 2500000.
fn shift_decimal(value: &str, exponent: u32) -> String {
    let (integer, fraction) = value.split_once('.').unwrap_or((value, ""));
    let shift = exponent as usize;
    let mut digits = String::from(integer);
    let rest = if fraction.len() <= shift {
        digits.push_str(fraction);
        digits.push_str(&"0".repeat(shift - fraction.len()));
        ""
    } else {
        digits.push_str(&fraction[..shift]);
        &fraction[shift..]
    };
    let trimmed = digits.trim_start_matches('0');
    let integer_part = if trimmed.is_empty() { "0" } else { trimmed };
    if rest.is_empty() {
        integer_part.to_string()
    } else {
        format!("{integer_part}.{rest}")
    }
}

fn ordinal_suffix(digits: &str) -> &'static str {
    // Number text here is ASCII, so byte slicing is character slicing.
    let tail: u32 = digits[digits.len().saturating_sub(2)..]
        .parse()
        .unwrap_or(0);
    match (tail, tail % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

/// The result of reading one number phrase.
struct Reading {
    /// Usually one token; two when a digit run precedes a quantity ("one two hundred").
    tokens: Vec<String>,
    consumed: usize,
    /// Whether the number may still take "percent", "dollars", "and a half".
    open: bool,
}

fn read_number(tokens: &[String], start: usize) -> Option<Reading> {
    let lexemes: Vec<Option<(Lexeme, Ending)>> = tokens[start..]
        .iter()
        .take_while(|t| lex(t).is_some())
        .map(|t| lex(t))
        .collect();
    let lexeme_at = |i: usize| lexemes.get(i).and_then(|l| l.as_ref()).map(|(l, _)| l);

    if let Some(Lexeme::Digits { sign, value }) = lexeme_at(0) {
        let mut value = value.clone();
        let mut consumed = 1;
        let mut ending = Ending::None;
        if let Some(Some((lexeme @ (Lexeme::Hundred | Lexeme::Scale(_)), e))) = lexemes.get(1) {
            let exponent = match lexeme {
                Lexeme::Scale(x) => *x,
                _ => 2,
            };
            value = shift_decimal(&value, exponent);
            consumed = 2;
            ending = *e;
        }
        let mut text = sign.map(String::from).unwrap_or_default() + &value;
        match ending {
            Ending::Ordinal => text.push_str(ordinal_suffix(&value)),
            Ending::Plural => text.push('s'),
            Ending::None => {}
        }
        return Some(Reading {
            tokens: vec![text],
            consumed,
            open: sign.is_none() && ending == Ending::None,
        });
    }

    let mut digit_run = String::new();
    let mut group = Group::new();
    let mut i = 0;
    let mut ending = Ending::None;
    let mut fraction: Option<String> = None;
    while let Some((lexeme, lexeme_ending)) = lexemes.get(i).and_then(|l| l.as_ref()) {
        let next = lexeme_at(i + 1);
        let phrase_has_digits = !digit_run.is_empty() || !group.is_empty();
        if *lexeme == Lexeme::Point && phrase_has_digits && is_single_digit_word(next) {
            let digits: String = (i + 1..lexemes.len())
                .map_while(|k| {
                    lexemes[k]
                        .as_ref()
                        .filter(|(_, e)| *e == Ending::None)
                        .and_then(|(l, _)| single_digit(l))
                })
                .collect();
            i += 1 + digits.len();
            fraction = Some(digits);
            break;
        }
        if group.accepts(lexeme, next, phrase_has_digits) {
            group.apply(lexeme);
            i += 1;
            if *lexeme_ending != Ending::None {
                ending = *lexeme_ending;
                break;
            }
            continue;
        }
        if !group.is_empty() && !group.is_quantity && starts_digit_run(lexeme, next) {
            digit_run.push_str(&group_text(&group));
            group = Group::new();
            continue;
        }
        break;
    }
    if i == 0 || (group.is_empty() && digit_run.is_empty()) {
        return None;
    }

    let mut out = Vec::new();
    let mut number = if group.is_quantity {
        if !digit_run.is_empty() {
            out.push(digit_run);
        }
        group_text(&group)
    } else {
        digit_run + &group_text(&group)
    };
    let open = ending == Ending::None;
    if let Some(fraction) = fraction {
        number = format!("{number}.{fraction}");
        if let Some(Some((Lexeme::Hundred | Lexeme::Scale(_), _))) = lexemes.get(i) {
            let exponent = match lexeme_at(i) {
                Some(Lexeme::Scale(x)) => *x,
                _ => 2,
            };
            number = shift_decimal(&number, exponent);
            i += 1;
        }
    }
    match ending {
        Ending::Ordinal => number.push_str(ordinal_suffix(&number)),
        Ending::Plural => number.push('s'),
        Ending::None => {}
    }
    out.push(number);
    Some(Reading {
        tokens: out,
        consumed: i,
        open,
    })
}

fn group_text(group: &Group) -> String {
    if group.last == Last::Zero {
        "0".to_string()
    } else if group.is_empty() {
        String::new()
    } else {
        group.digits()
    }
}

fn currency_sign(word: &str) -> Option<char> {
    match word {
        "dollar" | "dollars" => Some('$'),
        "pound" | "pounds" => Some('£'),
        "euro" | "euros" => Some('€'),
        "cent" | "cents" => Some('¢'),
        _ => None,
    }
}

/// Rewrites spoken numbers in `tokens` as digits; see the module documentation.
pub(crate) fn normalize_numbers(tokens: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let negative = tokens[i] == "minus";
        let number_start = if negative { i + 1 } else { i };
        let Some(reading) = read_number(tokens, number_start)
            .filter(|r| !negative || r.tokens[0].starts_with(|c: char| c.is_ascii_digit()))
        else {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        };
        let mut produced = reading.tokens;
        if negative {
            produced[0].insert(0, '-');
        }
        i = number_start + reading.consumed;
        let word = |k: usize| tokens.get(k).map(String::as_str);
        if reading.open {
            let last = produced
                .last_mut()
                .expect("a reading has at least one token");
            let is_integer = last.chars().all(|c| c.is_ascii_digit());
            if is_integer
                && word(i) == Some("and")
                && word(i + 1) == Some("a")
                && word(i + 2) == Some("half")
            {
                last.push_str(".5");
                i += 3;
            }
            if word(i) == Some("percent") {
                last.push('%');
                i += 1;
            } else if word(i) == Some("per") && word(i + 1) == Some("cent") {
                last.push('%');
                i += 2;
            } else if let Some(sign) = word(i).and_then(currency_sign) {
                if !last.starts_with('-') {
                    last.insert(0, sign);
                    i += 1;
                }
            }
        }
        out.extend(produced);
    }
    join_currency_amounts(out)
}

/// "$5 and ¢50" -> "$5.50", "$0.50" -> "¢50", and a lone "1" -> "one".
fn join_currency_amounts(tokens: Vec<String>) -> Vec<String> {
    let is_whole_amount = |t: &str| {
        t.strip_prefix(['$', '£', '€'])
            .is_some_and(|amount| !amount.is_empty() && amount.chars().all(|c| c.is_ascii_digit()))
    };
    let cents_of = |t: &str| {
        t.strip_prefix('¢')
            .filter(|c| (1..=2).contains(&c.len()) && c.chars().all(|d| d.is_ascii_digit()))
            .map(str::to_string)
    };
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if is_whole_amount(token) {
            let (cents, used) = match tokens.get(i + 1).map(String::as_str) {
                Some("and") => (tokens.get(i + 2).and_then(|t| cents_of(t)), 3),
                Some(t) => (cents_of(t), 2),
                None => (None, 1),
            };
            if let Some(cents) = cents {
                out.push(format!("{token}.{cents:0>2}"));
                i += used;
                continue;
            }
        }
        out.push(
            cents_from_fraction(token).unwrap_or_else(|| match token.as_str() {
                "1" => "one".to_string(),
                "1s" => "ones".to_string(),
                _ => token.clone(),
            }),
        );
        i += 1;
    }
    out
}

/// "$0.50" and "$0.5" are fifty cents, written "¢50" like the spoken form.
fn cents_from_fraction(token: &str) -> Option<String> {
    let rest = token.strip_prefix("$0.")?;
    if rest.is_empty() || rest.len() > 2 || !rest.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let cents: u32 = format!("{rest:0<2}").parse().ok()?;
    Some(format!("¢{cents}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> String {
        let tokens: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        normalize_numbers(&tokens).join(" ")
    }

    #[test]
    fn cardinals() {
        assert_eq!(run("zero"), "0");
        assert_eq!(run("seven"), "7");
        assert_eq!(run("fifteen"), "15");
        assert_eq!(run("ninety nine"), "99");
        assert_eq!(run("a hundred"), "a 100");
        assert_eq!(run("nine hundred ninety nine thousand"), "999000");
        assert_eq!(run("one million and one"), "1000001");
        assert_eq!(run("twelve hundred"), "1200");
        assert_eq!(run("four trillion"), "4000000000000");
    }

    #[test]
    fn digit_runs_concatenate_but_quantities_do_not() {
        assert_eq!(run("twenty twenty one"), "2021");
        assert_eq!(run("nineteen oh five"), "1905");
        assert_eq!(run("five five five"), "555");
        assert_eq!(run("two hundred twenty twenty"), "220 20");
        assert_eq!(run("two three hundred"), "2 300");
    }

    #[test]
    fn words_around_numbers_survive() {
        assert_eq!(run("the and point oh"), "the and point oh");
        assert_eq!(run("two and three"), "2 and 3");
        assert_eq!(run("minus"), "minus");
        assert_eq!(run("percent of dollars"), "percent of dollars");
    }

    #[test]
    fn ordinal_suffix_follows_the_value() {
        assert_eq!(run("eleventh"), "11th");
        assert_eq!(run("one hundred and first"), "101st");
        assert_eq!(run("thirty second"), "32nd");
        assert_eq!(run("twenty third"), "23rd");
        assert_eq!(run("millionth"), "1000000th");
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(shift_decimal("2.5", 6), "2500000");
        assert_eq!(shift_decimal("1.2345", 2), "123.45");
        assert_eq!(shift_decimal("0.5", 3), "500");
        assert_eq!(run("zero point five"), "0.5");
        assert_eq!(run(".5"), "0.5");
    }
}
