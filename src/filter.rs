//! Lambda event-filter matching for the template's FilterCriteria (being written; see issue 3).
