"""The words the demo catalog is made of (see :mod:`courses_service.seed`)."""

from __future__ import annotations

CATEGORIES: dict[str, list[str]] = {
    "Programming": ["Python", "JavaScript", "Rust", "Go", "TypeScript", "SQL", "Kotlin"],
    "Data Science": ["Machine Learning", "Statistics", "Pandas", "Deep Learning", "Data Viz"],
    "Design": ["UX Research", "Typography", "Figma", "Color Theory", "Interaction Design"],
    "Business": ["Product Management", "Negotiation", "Accounting", "Startups", "Strategy"],
    "Marketing": ["SEO", "Copywriting", "Growth", "Brand Building", "Email Marketing"],
    "Photography": ["Portrait Photography", "Lightroom", "Street Photography", "Lighting"],
    "Music": ["Music Theory", "Guitar", "Piano", "Songwriting", "Mixing and Mastering"],
    "Languages": ["Spanish", "Japanese", "German", "French", "Mandarin"],
    "Personal Development": ["Productivity", "Public Speaking", "Leadership", "Writing"],
    "Health & Fitness": ["Yoga", "Nutrition", "Strength Training", "Mindfulness", "Running"],
}
PATTERNS = [
    "{topic} for Beginners",
    "Practical {topic}",
    "Mastering {topic}",
    "{topic}: From Zero to Hero",
    "The Complete {topic} Bootcamp",
    "{topic} in 30 Days",
    "Advanced {topic} Techniques",
    "{topic} Essentials",
    "Hands-on {topic} Projects",
    "Modern {topic}",
]
FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Katherine", "Dennis", "Barbara",
         "Ken", "Radia", "Guido", "Frances", "Edsger", "Hedy", "Tim", "Sophie", "Yukihiro",
         "Anita", "John", "Mary", "Lin", "Amara", "Diego", "Priya", "Kwame", "Elena"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Johnson", "Ritchie",
        "Liskov", "Thompson", "Perlman", "van Rossum", "Allen", "Dijkstra", "Lamarr",
        "Berners-Lee", "Wilson", "Matsumoto", "Borg", "Backus", "Keller", "Chen", "Okafor",
        "Alvarez", "Natarajan", "Mensah", "Petrova"]  # fmt: skip
SECTION_NAMES = ["Getting Started", "Core Concepts", "Going Deeper", "Real-world Practice",
                 "Common Pitfalls", "Projects", "Beyond the Basics", "Wrapping Up"]  # fmt: skip
LESSON_NAMES = ["Overview", "Setting Up", "First Steps", "Key Ideas", "Worked Example",
                "Exercise", "Review", "Case Study", "Q&A", "Cheat Sheet"]  # fmt: skip
STYLES = ["hands-on", "practical", "real-world", "guided"]
PRICES = [999, 1499, 1999, 2499, 2999, 4999, 7999, 9999]
COMMENTS = [
    "Clear explanations and great pacing.",
    "Exactly what I needed to get started.",
    "Good content, but some lessons felt rushed.",
    "The projects made it click for me.",
    "Solid course; I would recommend it.",
    "A bit basic for my level.",
    "Excellent instructor, very engaging.",
    "",
]
