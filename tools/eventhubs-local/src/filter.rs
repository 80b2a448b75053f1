//! The start position a receiver asks for: Event Hubs' selector filter expression,
//! `amqp.annotation.x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time` `>` or `>=` a quoted
//! value, where offset `-1` is the start of the partition and `@latest` its end.

/// Which annotation a filter compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Offset,
    SequenceNumber,
    /// Milliseconds since the Unix epoch.
    EnqueuedTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// From the first event (`x-opt-offset > '-1'`).
    Start,
    /// From the next event appended (`x-opt-offset > '@latest'`).
    End,
    /// Events whose `field` is after (or at, `inclusive`) `value`.
    After {
        field: Field,
        value: i64,
        inclusive: bool,
    },
}

/// Parses a selector filter expression; the error says what could not be read.
pub fn parse(expression: &str) -> Result<Position, String> {
    let rest = expression
        .trim()
        .strip_prefix("amqp.annotation.")
        .ok_or_else(|| format!("not an annotation filter: {expression:?}"))?;
    let (field, rest) = [
        ("x-opt-offset", Field::Offset),
        ("x-opt-sequence-number", Field::SequenceNumber),
        ("x-opt-enqueued-time", Field::EnqueuedTime),
    ]
    .into_iter()
    .find_map(|(name, field)| rest.strip_prefix(name).map(|rest| (field, rest)))
    .ok_or_else(|| format!("unknown annotation in filter {expression:?}"))?;
    let rest = rest.trim_start();
    let (inclusive, rest) = if let Some(rest) = rest.strip_prefix(">=") {
        (true, rest)
    } else if let Some(rest) = rest.strip_prefix('>') {
        (false, rest)
    } else {
        return Err(format!("filter {expression:?} is not '>' or '>='"));
    };
    let value = rest
        .trim()
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(|| format!("filter {expression:?} has no quoted value"))?;
    match (field, value) {
        (Field::Offset, "-1") if !inclusive => Ok(Position::Start),
        (Field::Offset, "@latest") => Ok(Position::End),
        (field, value) => {
            let value = value
                .parse()
                .map_err(|_| format!("filter {expression:?} has a value that is not a number"))?;
            Ok(Position::After {
                field,
                value,
                inclusive,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_clients_send() {
        assert_eq!(
            parse("amqp.annotation.x-opt-offset > '-1'"),
            Ok(Position::Start)
        );
        assert_eq!(
            parse("amqp.annotation.x-opt-offset > '@latest'"),
            Ok(Position::End)
        );
        assert_eq!(
            parse("amqp.annotation.x-opt-offset >'2048'"),
            Ok(Position::After {
                field: Field::Offset,
                value: 2048,
                inclusive: false
            })
        );
        assert_eq!(
            parse("amqp.annotation.x-opt-sequence-number >='12'"),
            Ok(Position::After {
                field: Field::SequenceNumber,
                value: 12,
                inclusive: true
            })
        );
        assert_eq!(
            parse("amqp.annotation.x-opt-enqueued-time > '1700000000000'"),
            Ok(Position::After {
                field: Field::EnqueuedTime,
                value: 1_700_000_000_000,
                inclusive: false
            })
        );
        for bad in [
            "",
            "x-opt-offset > '1'",
            "amqp.annotation.x-opt-owner > '1'",
            "amqp.annotation.x-opt-offset < '1'",
            "amqp.annotation.x-opt-offset > 1",
            "amqp.annotation.x-opt-offset > 'one'",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
