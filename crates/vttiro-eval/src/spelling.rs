/// British spellings and their American forms, sorted by the British word so that lookups
/// can binary-search. Whisper's normaliser uses a much longer list; this one covers the words
/// that actually show up in speech, including the inflected forms people say most.
const BRITISH_TO_AMERICAN: &[(&str, &str)] = &[
    ("acknowledgement", "acknowledgment"),
    ("aeroplane", "airplane"),
    ("aeroplanes", "airplanes"),
    ("ageing", "aging"),
    ("aluminium", "aluminum"),
    ("anaemia", "anemia"),
    ("anaesthetic", "anesthetic"),
    ("analogue", "analog"),
    ("analyse", "analyze"),
    ("analysed", "analyzed"),
    ("analysing", "analyzing"),
    ("apologise", "apologize"),
    ("apologised", "apologized"),
    ("armour", "armor"),
    ("behaviour", "behavior"),
    ("behaviours", "behaviors"),
    ("calibre", "caliber"),
    ("cancelled", "canceled"),
    ("cancelling", "canceling"),
    ("catalogue", "catalog"),
    ("centre", "center"),
    ("centred", "centered"),
    ("centres", "centers"),
    ("characterise", "characterize"),
    ("cheque", "check"),
    ("cheques", "checks"),
    ("civilisation", "civilization"),
    ("colour", "color"),
    ("coloured", "colored"),
    ("colourful", "colorful"),
    ("colours", "colors"),
    ("cosy", "cozy"),
    ("criticise", "criticize"),
    ("criticised", "criticized"),
    ("defence", "defense"),
    ("dialogue", "dialog"),
    ("diarrhoea", "diarrhea"),
    ("draught", "draft"),
    ("emphasise", "emphasize"),
    ("encyclopaedia", "encyclopedia"),
    ("endeavour", "endeavor"),
    ("enrol", "enroll"),
    ("favour", "favor"),
    ("favourable", "favorable"),
    ("favourite", "favorite"),
    ("favourites", "favorites"),
    ("fibre", "fiber"),
    ("flavour", "flavor"),
    ("fulfil", "fulfill"),
    ("globalisation", "globalization"),
    ("grey", "gray"),
    ("harbour", "harbor"),
    ("honour", "honor"),
    ("honoured", "honored"),
    ("humour", "humor"),
    ("instalment", "installment"),
    ("jewellery", "jewelry"),
    ("judgement", "judgment"),
    ("kilometre", "kilometer"),
    ("kilometres", "kilometers"),
    ("labelled", "labeled"),
    ("labour", "labor"),
    ("licence", "license"),
    ("litre", "liter"),
    ("litres", "liters"),
    ("manoeuvre", "maneuver"),
    ("maximise", "maximize"),
    ("memorise", "memorize"),
    ("metre", "meter"),
    ("metres", "meters"),
    ("minimise", "minimize"),
    ("modelling", "modeling"),
    ("mould", "mold"),
    ("moustache", "mustache"),
    ("neighbour", "neighbor"),
    ("neighbourhood", "neighborhood"),
    ("neighbours", "neighbors"),
    ("offence", "offense"),
    ("organisation", "organization"),
    ("organisations", "organizations"),
    ("organise", "organize"),
    ("organised", "organized"),
    ("paediatric", "pediatric"),
    ("plough", "plow"),
    ("practise", "practice"),
    ("prioritise", "prioritize"),
    ("programme", "program"),
    ("programmes", "programs"),
    ("pyjamas", "pajamas"),
    ("realise", "realize"),
    ("realised", "realized"),
    ("realising", "realizing"),
    ("recognise", "recognize"),
    ("recognised", "recognized"),
    ("rumour", "rumor"),
    ("sceptical", "skeptical"),
    ("sombre", "somber"),
    ("specialise", "specialize"),
    ("storey", "story"),
    ("sulphur", "sulfur"),
    ("summarise", "summarize"),
    ("theatre", "theater"),
    ("theatres", "theaters"),
    ("travelled", "traveled"),
    ("traveller", "traveler"),
    ("travellers", "travelers"),
    ("travelling", "traveling"),
    ("tyre", "tire"),
    ("tyres", "tires"),
    ("vapour", "vapor"),
    ("woollen", "woolen"),
];

/// The American spelling of `word`, or `None` when the table does not list it.
pub(crate) fn american_spelling(word: &str) -> Option<&'static str> {
    BRITISH_TO_AMERICAN
        .binary_search_by(|(british, _)| british.cmp(&word))
        .ok()
        .map(|index| BRITISH_TO_AMERICAN[index].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_large_enough_for_binary_search() {
        assert!(BRITISH_TO_AMERICAN.len() >= 60);
        for pair in BRITISH_TO_AMERICAN.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{} must sort before {}",
                pair[0].0,
                pair[1].0
            );
        }
        for (british, american) in BRITISH_TO_AMERICAN {
            assert_ne!(british, american);
            assert_eq!(american_spelling(british), Some(*american));
        }
    }

    #[test]
    fn unknown_and_american_words_are_left_alone() {
        assert_eq!(american_spelling("color"), None);
        assert_eq!(american_spelling("hello"), None);
        assert_eq!(american_spelling("centre"), Some("center"));
    }
}
