"""A small, original sentiment dataset used by ``gpta demo``.

Every review below was written specifically for this project: none of the rows are copied
from a public dataset. The reviews are short English texts about products and services from
many domains (restaurants, hotels, gadgets, books, films, apps, games, courses, travel,
household products and customer service), each labelled with the writer's overall
sentiment. Roughly one in seven is deliberately harder (negation, sarcasm, mixed aspects
with a clear overall verdict).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

__all__ = [
    "CSV_FILENAME",
    "DESCRIPTION",
    "DESCRIPTION_FILENAME",
    "LABELS",
    "NEGATIVE",
    "POSITIVE",
    "demo_rows",
    "write_demo_dataset",
]

LABELS: tuple[str, str] = ("negative", "positive")
"""The two class labels, in sorted order."""

CSV_FILENAME = "reviews.csv"
DESCRIPTION_FILENAME = "description.txt"

DESCRIPTION: str = (
    "Short English reviews of products and services from many domains, including "
    "restaurants, hotels, gadgets, books, films, apps, games, online courses, travel and "
    "customer service. Each review is labelled with the overall sentiment of its writer, "
    'either "positive" or "negative", even when it mentions both good and bad points. '
    "The reviews were written for the gpta demo and are not taken from any public dataset."
)
"""A dataset description, phrased the way a user would describe their own data."""

POSITIVE: tuple[str, ...] = (
    "Best pad thai I've had in ages, and the portions were huge.",
    "Great little hotel with spotless rooms and a genuinely friendly front desk.",
    "Battery easily lasts two days. Very happy with this phone.",
    "Couldn't put this book down, finished it in one weekend.",
    "A beautiful, moving film with a soundtrack I keep humming days later.",
    "The app is fast, clean and does exactly what it promises.",
    "Support sorted out my billing problem in under ten minutes. Impressed.",
    "Flight left on time, landed early, and the cabin crew were lovely.",
    "Gorgeous art, tight controls, and zero annoying ads. Totally hooked.",
    "This vacuum picks up everything, even the dog hair on the stairs.",
    "Well structured course, and the instructor explains things really clearly.",
    "Loved every minute of it!",
    "Solid headphones for the price.",
    "Not bad at all, honestly better than I expected.",
    (
        "The soup arrived lukewarm, but the manager replaced it right away and took the "
        "desserts off the bill. We will definitely be back."
    ),
    "Exactly as described, arrived early, works perfectly.",
    "My kids have played this board game every night this week.",
    "Comfy bed, great shower pressure, quiet room. What more could you want?",
    "The plot twists actually surprised me, which almost never happens.",
    "honestly this blender is a beast, smoothies in like 20 seconds",
    "Checkout took two taps. Whoever designed this app deserves a raise.",
    "The tour guide was funny, knowledgeable and never rushed us.",
    "Ten out of ten, would order the garlic bread again.",
    "I was skeptical, but this cast iron pan has replaced half my cookware.",
    "Clear explanations, useful exercises, and feedback on every assignment. Worth every penny.",
    "Staff remembered my name on the second day. Little things like that matter.",
    "This keyboard feels amazing to type on, and the keys are quiet enough for the office.",
    "A cozy mystery that kept me guessing until the last chapter.",
    "Funny, sharp, and surprisingly heartfelt. Go see it.",
    "The meditation app actually helped me fall asleep faster.",
    (
        "They lost my suitcase, but it was delivered to my hotel that same night with an "
        "apology and a voucher. Handled really well."
    ),
    "Cheap, cheerful and delicious. Our new Friday spot.",
    "The sofa was easy to assemble and it's way comfier than it looks online.",
    "Five stars for this detergent, my whites have never looked this white.",
    "I didn't think I'd enjoy a documentary about bees this much.",
    "The rooftop bar view alone is worth the stay.",
    "Fits perfectly, charges fast, and the case feels premium.",
    "The sequel is even better than the first book.",
    "Crisp picture, great sound, easy setup. Happy with this TV.",
    "The banking app finally lets me freeze my card instantly, love it.",
    (
        "Reported a faulty kettle and they shipped a replacement before I'd even sent the old "
        "one back."
    ),
    "Train was clean, seats were comfy, and the wifi actually worked.",
    "Co-op mode is a blast with friends, we laughed the whole night.",
    "These towels are thick and soft, and they haven't faded after a dozen washes.",
    "I finally understand statistics thanks to this course.",
    "Honestly can't fault it.",
    "wow. just wow. that chocolate cake",
    "The hotel upgraded us for our anniversary without us even asking. So thoughtful.",
    "Sturdy, light, and the zipper hasn't snagged once. Great backpack.",
    "Slow start, but by the midpoint I was completely invested. Highly recommend sticking with it.",
    "Stellar performances across the board, especially from the lead.",
    "Simple to-do app that doesn't try to do too much. Perfect.",
    "The chat agent was patient and walked me through every single step.",
    "The ferry ride was smooth and the island was everything the brochure promised.",
    "Runs smoothly even on my old laptop. Great optimisation.",
    "This mop actually gets the grout clean. I'm amazed.",
    "The lectures are short and focused, perfect for studying on the bus.",
    "I wasn't expecting much from a roadside diner, but those pancakes were incredible.",
    "Beats my old earbuds in every way.",
    "The pages practically turn themselves.",
    "Wasn't sure about a three hour runtime, but I never once checked my watch.",
    "Sync between phone and laptop is instant. No complaints.",
    "Refund processed in two days, no questions asked. Would buy from them again.",
    "The sunset hike with our guide was the highlight of the whole trip.",
    "The puzzles are clever without being frustrating. Loved it.",
    "These storage boxes stack neatly and the lids actually stay on.",
    "Hands down the most useful online class I've taken.",
    "Fresh pasta, friendly waiters, fair prices. Can't ask for more.",
    "Pool was warm, breakfast was generous, and checkout was painless.",
    "The camera takes stunning photos even at night.",
    "Beautifully written, I underlined half the book.",
    "The animation is breathtaking and my kids were glued to the screen.",
    "Nothing fancy, but this budgeting app has kept me on track for months.",
    "The rep was honest about the delay and kept me updated daily. Appreciated that.",
    "Smooth check-in, short queues, and the lounge was a nice surprise.",
    "Great story mode and the soundtrack slaps.",
    "The air fryer cooks evenly and cleans up in a minute.",
    "I came in knowing nothing about photography and left confident shooting in manual.",
    "Tacos were fantastic!! The salsa bar alone is worth the trip",
    "Clean, quiet, central. Perfect base for exploring the old town.",
    "Nice weight, bright screen, and the stylus is surprisingly precise.",
    "Not my usual genre, but I'm glad a friend pushed me to read it.",
    "A quiet, gentle film that stayed with me long after the credits.",
    "Finally a weather app that's actually accurate for my area.",
    "They fixed my router remotely while I was still on the phone. Brilliant service.",
    "The sleeper train was an adventure in the best possible way.",
    "Easy to pick up, hard to put down.",
    "The duvet is warm without being heavy. Sleeping so much better.",
    "The workbook that came with the course is genuinely helpful.",
    "Service was a bit slow, but the food more than made up for it.",
    "The spa was heavenly and the therapists were so attentive.",
    "Love this smartwatch, the sleep tracking is spot on.",
    "Witty dialogue and characters I genuinely cared about.",
    "Can't believe this movie flew under the radar. A hidden gem.",
    "Clean interface, no clutter, and the dark mode is easy on the eyes.",
    "Polite, fast, and they followed up the next day to make sure everything was working.",
    "Rental car was spotless and the pickup took five minutes.",
    "Fair monetisation and regular free updates. Respect to the devs.",
    "The language course made practising every day feel like a game.",
    "yeah the burger was unreal, def going back",
    "Overpriced minibar aside, this was one of the nicest hotels I've stayed in.",
    "The noise cancelling on these is black magic. My commute is finally peaceful.",
    "A thoughtful, well researched history book that never feels dry.",
    "The ending made me cry in the best way.",
    "This habit tracker is simple, pretty, and actually motivating.",
    "I expected a runaround, but they resolved my complaint on the first call.",
    "Cruise food was excellent and the crew went out of their way for us.",
    "Couch co-op in a modern game? Yes please. My partner and I love it.",
    "Challenging but fair exams, and the forum is full of helpful people.",
    "Tiny place, huge flavours.",
    "The view from our balcony was unreal, woke up to the sea every morning.",
    "The printer set itself up on the wifi with zero fuss. Miracles do happen.",
    "I laughed out loud on the bus more than once. Embarrassing but worth it.",
    "Tense, clever thriller with not a single wasted scene.",
    "The shopping list feature in this recipe app saves me so much time.",
    "Warranty claim was painless. Sent photos, got a new unit within a week.",
    "The walking tour was worth every cent and then some.",
    "Controls feel tight and responsive, I never felt cheated by a death.",
    "The shower head was easy to install and the pressure is fantastic.",
    "Practical, no fluff, and I used what I learned at work the very next day.",
    "The kids' club meant we actually got to relax for once.",
    "I've dropped this phone more times than I can count and it still looks new.",
    "The characters felt like real people, flaws and all.",
    "Rewatched it twice already. Still love it.",
    "The photo editor is powerful without being overwhelming. Great for beginners.",
    (
        "The chatbot was useless, but the human agent it handed me to fixed everything in "
        "minutes. Happy overall."
    ),
    "Booking was simple and the hostel was cleaner than most hotels I've stayed in.",
    "Huge open world, and every corner has something worth finding.",
    "This candle smells amazing and burns for ages.",
    "The pacing of the lessons is perfect for working adults.",
    "Dessert menu is dangerous. In a good way.",
    "Front desk lent us umbrellas and recommended a great local restaurant.",
    "Worth the upgrade from my old tablet, everything feels snappier.",
    "I bought it for the cover and stayed for the story.",
    "Not a single boring moment in two hours.",
    "The installer arrived on time, worked tidily and explained everything.",
    "Bought it on sale, would happily have paid full price.",
    "I'd take this class again just for the instructor's enthusiasm.",
    "Sure, the decor is dated, but the food is so good nobody cares.",
    "Lovely boutique hotel with a breakfast worth waking up early for.",
    "The speaker is tiny but fills the whole room with sound.",
    "A smart, funny novel about family that felt very honest.",
    "Updates actually improve things instead of breaking them. Refreshing.",
    "They called back exactly when they said they would. Shockingly competent.",
    "Finally a racing game that's fun for casual players too.",
    "The robot vacuum maps the house perfectly and never gets stuck anymore.",
    "The certificate course helped me land a new job. Thank you!",
    "Honestly I have no complaints whatsoever.",
    "The staff went above and beyond when my daughter got sick during our stay.",
    "The kind of book you immediately want to lend to everyone you know.",
    "Grabbed takeaway on a whim and it was the best curry in the neighbourhood.",
    "its hard to find a note taking app this reliable, never lost a thing",
    "I didn't hate it. I loved it.",
    "Couldn't have asked for a smoother trip from start to finish.",
    "Puzzle game of the year for me, no contest.",
    "These pans heat evenly and nothing sticks. Very pleased.",
    "The tutor answered my questions late at night and never made me feel stupid.",
    "The airport shuttle was waiting for us even though our flight was delayed.",
    "Great acting and a script that respects the audience's intelligence.",
    "The customer service team turned a bad experience into a great one.",
    "I wanted to hate this game because of the hype, but it completely won me over.",
    (
        "We booked this guesthouse last minute after our original reservation fell through, and "
        "it turned out to be the best part of the trip. The owners gave us maps, packed "
        "lunches for our hike, and even dried our soaked boots overnight."
    ),
    (
        "I've tried at least five language apps and this is the only one I've stuck with. The "
        "lessons are short, the voice recognition is forgiving, and the reminders nudge without "
        "nagging."
    ),
    (
        "The first hour is a bit of a slog with all the tutorials, but once the world opens up "
        "it's one of the most rewarding games I've played on any console."
    ),
    (
        "Ordered a desk lamp expecting nothing special. It has three colour temperatures, a "
        "dimmer that goes really low, and a base heavy enough that my cat can't knock it over."
    ),
    'They called it a "quick fix" and, for once, it actually was.',
    'The "small" pizza could feed three people, and it was delicious.',
    (
        "The accommodation exceeded our expectations in every respect, and the staff were "
        "unfailingly courteous."
    ),
    "I am pleased to report that the replacement unit has performed flawlessly since installation.",
    "The module was rigorous, well paced and supported by excellent reading materials.",
)
"""Reviews whose writer is, overall, satisfied."""

NEGATIVE: tuple[str, ...] = (
    "Cold fries, soggy bun, and we waited forty minutes.",
    "The room smelled of smoke and the sheets had stains on them.",
    "Phone overheats just from watching videos. Returning it.",
    "I gave up on this book halfway through. Nothing happens.",
    "Two hours of my life I'll never get back.",
    "App crashes every time I try to upload a photo.",
    "Been on hold for an hour and then the call dropped. Useless.",
    "Flight was delayed six hours and nobody told us anything.",
    "Pay to win garbage. Uninstalled.",
    "The vacuum lost most of its suction after a month.",
    "The course was just someone reading slides out loud.",
    "Wouldn't recommend this to anyone.",
    "Cheap plastic, broke in the first week.",
    "I wanted to love this place, but the food was bland and overpriced.",
    "Oh great, another update that moves every button I use. Just what I needed.",
    "Arrived damaged and the seller ignored my messages.",
    "The rules of this board game are so confusing we gave up after twenty minutes.",
    "Paper thin walls, heard the neighbours all night.",
    "Predictable plot, and the characters are cardboard cutouts.",
    "blender died after like 3 smoothies lol never again",
    "Login fails every other day and I have to reset my password again.",
    "The tour guide was late, rushed everything, and skipped half the stops.",
    "Steak ordered medium rare came out grey and chewy.",
    "The coating on this pan started flaking after just a few uses.",
    (
        "Most of the course material is outdated and half the exercises reference tools that no "
        "longer exist."
    ),
    "Staff were rude at check-in and acted like we were bothering them.",
    "Keys started sticking within a week. Disappointing keyboard.",
    "The mystery was obvious from chapter two.",
    "Loud, long, and completely forgettable.",
    "The meditation app nags you constantly to upgrade. Very unrelaxing.",
    "They lost my luggage and three weeks later I still haven't heard back.",
    "Tiny portions for the price, we left hungry.",
    "The sofa sagged within months and the fabric is already pilling.",
    "This detergent left a weird residue on all my clothes.",
    "Not worth the hype at all.",
    "The pool was closed for our entire stay and nobody mentioned it when we booked.",
    "Case doesn't fit properly and the buttons are hard to press.",
    "The sequel ruins everything that made the first book special.",
    "Picture is fine, but the sound is tinny and the remote is awful.",
    "The banking app logs me out every thirty seconds. Infuriating.",
    "Sent my kettle off for repair and they returned it still broken.",
    "Train was packed, no air conditioning, and the toilet was out of order.",
    "Matchmaking takes forever and the servers lag constantly.",
    "Towels shed fluff all over everything, even after several washes.",
    "I learned more from free videos than from this paid course.",
    "Never again. Seriously, never.",
    "ugh. dry cake, burnt coffee, and a sticky table",
    "We asked for a quiet room and got one right next to the lift.",
    "The backpack strap ripped on day two of my trip.",
    "It starts strong, then completely falls apart in the second half.",
    "The acting is wooden and the dialogue is painful.",
    "This to-do app hides basic features behind a pricey subscription.",
    "The chat agent kept pasting the same irrelevant help article.",
    "The ferry was cancelled and we were left stranded with no refund offered.",
    "Stutters constantly even on a high-end machine. Terrible port.",
    "The mop head fell apart in the bucket the first time I used it.",
    "The lecturer mumbles and the audio quality is dreadful.",
    "Not exactly the five star experience the website promised.",
    "These earbuds keep disconnecting from my phone.",
    "Such a slog. I kept checking how many pages were left.",
    "Gorgeous visuals can't save a script this lazy.",
    "Sync breaks constantly and I've lost notes twice now.",
    "Still waiting on my refund after six weeks and four emails.",
    "The hike was overcrowded and the guide clearly didn't want to be there.",
    "Puzzles are either trivially easy or make no sense at all.",
    "The storage box lids crack if you so much as look at them.",
    "Most boring online class I've ever sat through.",
    "Overcooked pasta, watery sauce, and a waiter who vanished for half an hour.",
    "Breakfast was stale pastries and instant coffee. Pretty sad for the price.",
    "The camera is grainy in anything but perfect daylight.",
    "Overwritten and pretentious, every sentence tries way too hard.",
    "My kids were bored ten minutes in, and honestly so was I.",
    "The budgeting app double counts transactions, which kind of defeats the point.",
    "The rep promised a callback that never came. Twice.",
    "Two hour queue at security and then the lounge was closed.",
    "Story mode is barely three hours long. Feels like a demo.",
    "The coating on the air fryer basket peeled off into our food.",
    "The photography course spent more time selling gear than teaching.",
    "Tacos were soggy and the salsa tasted like it came from a jar",
    "Central location, sure, but the room was filthy and the shower barely worked.",
    "Screen has a dead pixel right in the middle. Great quality control.",
    "I tried to like it because everyone raves about it, but I just found it dull.",
    "A slow, joyless film that mistakes boredom for depth.",
    "The weather app is wrong more often than it's right.",
    "They reset my router remotely and somehow made the problem worse.",
    "The sleeper cabin was dirty and freezing, I barely slept.",
    "Repetitive missions and a map full of pointless icons.",
    "The duvet is lumpy and the filling clumps in the corners.",
    "The course workbook is full of typos and wrong answers.",
    "The food was decent, but an hour wait and a rude server ruined the evening.",
    "The spa was noisy and the massage felt rushed.",
    "Step count is wildly inaccurate on this smartwatch. It counts steps while I'm driving.",
    "Characters make baffling decisions just to move the plot along.",
    "Overhyped and overlong. I nearly walked out.",
    "Cluttered interface with ads popping up everywhere.",
    "Support closed my ticket without actually solving anything.",
    "The rental car had a flat tyre and the desk refused to swap it.",
    "Loot boxes everywhere. Shame, the core game had potential.",
    "The voice recognition in this language app never understands me.",
    "nah the burger was dry and the bun was stale, not worth it",
    "Lovely lobby, shame about the mouldy bathroom and the broken air conditioning.",
    "Noise cancelling barely does anything and they hurt my ears after an hour.",
    "Dry, repetitive and badly edited. Could have been half the length.",
    "The ending felt rushed and made no sense.",
    "This habit tracker resets my streaks for no reason. Demotivating.",
    "I was told my issue was escalated. It wasn't. Nobody ever followed up.",
    "Cruise buffet was the same lukewarm food every day and the cabins were cramped.",
    "Couch co-op is advertised on the box but it's online only. Misleading.",
    "Exams test things the lectures never even covered.",
    "Overpriced, underseasoned, and the music was way too loud.",
    "Our sea view room looked out on a car park with a sliver of sea in the corner.",
    "The printer refuses to connect to wifi and the manual is useless.",
    "The jokes fall flat and the humour feels ten years out of date.",
    "Thriller with zero tension. I guessed the twist from the trailer.",
    "The recipe app keeps crashing halfway through cooking. Not ideal with flour on your hands.",
    "Warranty claim denied on a technicality. Never buying this brand again.",
    "The walking tour was basically a bored guy reading from his phone.",
    "Checkpoints are so far apart that dying is just tedious, not challenging.",
    "Shower head leaked from day one no matter how much tape I used.",
    "Too basic to be useful. Everything here is on the first page of any search.",
    "The kids' club was understaffed and basically just a room with a TV.",
    "Screen cracked from a short drop onto carpet. Flimsy.",
    "Every character is a cliché and the romance feels forced.",
    "Fell asleep twice trying to finish it.",
    "The photo editor exports everything at low resolution unless you pay.",
    "Stuck in a chatbot loop for twenty minutes, then disconnected before I reached a human.",
    "The hostel photos must be ten years old. Broken lockers and grubby bunks.",
    "Huge open world with absolutely nothing to do in it.",
    "The candle barely smells of anything and tunnelled after an hour.",
    "Lessons go way too fast and assume knowledge they never teach.",
    "The dessert was clearly defrosted and still icy in the middle.",
    "Front desk charged us twice and then argued when we pointed it out.",
    "The new tablet is slower than my old one. How is that even possible?",
    "Lovely cover, shame about everything inside it.",
    "Not one laugh in ninety minutes of so-called comedy.",
    "The installer turned up four hours late and left a mess behind.",
    "Even at half price I feel ripped off.",
    "The instructor clearly didn't prepare and kept contradicting himself.",
    "Sure, it's cheap. There's a reason for that.",
    "The boutique charm wears off fast when there's no hot water.",
    "The speaker distorts as soon as you turn it past half volume.",
    "A novel about family that felt fake and manipulative.",
    "Every update breaks something that used to work.",
    "Promised a callback within the hour. Still waiting, three days later.",
    "The rubber band AI in this racing game makes every race feel rigged.",
    "The robot vacuum gets stuck under the same chair every single day.",
    "The certificate isn't recognised by any employer I've spoken to. Waste of money.",
    "Honestly I have nothing good to say about it.",
    "Nobody at the hotel helped when my daughter got sick, we had to find a pharmacy ourselves.",
    "Takeaway arrived cold, late, and missing half the order.",
    "its supposed to sync notes but half of mine just vanished, really frustrating",
    "Well, that was certainly an experience I never want to repeat.",
    "Missed connections, lost bags, and zero help from the airline.",
    "Pretty graphics, broken game. Crashes at every boss fight.",
    "Everything sticks to this supposedly non-stick pan.",
    "The tutor took days to answer simple questions and was condescending when he did.",
    "The airport shuttle never showed up and we had to pay for a taxi.",
    "Beautifully shot, but the story is a mess and the ending is insulting.",
    "Customer service turned a small problem into a huge headache.",
    "Sure, the staff were friendly enough, but the room was so dirty we checked out a day early.",
    (
        "We booked this place for a family reunion and regretted it immediately. Half the rooms "
        "weren't ready, the restaurant ran out of food by eight, and when we complained the "
        "manager simply shrugged and said it was a busy weekend."
    ),
    (
        "I really wanted this fitness tracker to work because the design is lovely, but the "
        "heart rate readings jump all over the place, the strap gave me a rash, and the app "
        "forgets my settings after every update."
    ),
    (
        "After three calls, two chats and a very long email thread, I still don't have a "
        "working internet connection. Every agent says a technician is coming, and no "
        "technician has ever arrived."
    ),
    (
        "The trailer promised a clever sci-fi thriller. What we got was two and a half hours of "
        "characters explaining the plot to each other in dark rooms."
    ),
    'The "deluxe" room was a broom cupboard with a window.',
    '"Fast delivery," they said. It took a month and came in a crushed box.',
    "Ten out of ten for the packaging, zero for the product inside it.",
    "I regret to say that the room fell well short of the standard advertised on your website.",
    (
        "Despite repeated requests, the fault has not been addressed and I consider the service "
        "unacceptable."
    ),
    "The course content was superficial and did not justify the considerable fee.",
)
"""Reviews whose writer is, overall, dissatisfied."""


def _order_key(label: str, text: str) -> str:
    """Return a stable, version-independent sort key that scrambles the order of texts."""
    return hashlib.sha256(f"{label}\n{text}".encode()).hexdigest()


def demo_rows() -> list[dict[str, str]]:
    """Return all rows as ``{"text": ..., "label": "positive" | "negative"}`` dictionaries.

    The order is deterministic (it depends only on the texts, not on Python's random
    module) and interleaved: each class is scrambled by a hash of its texts, then the two
    classes are zipped together pairwise, with the order inside each pair also decided by
    a hash. Every prefix of the list is therefore balanced to within one row.
    """
    pos = sorted(POSITIVE, key=lambda t: _order_key("positive", t))
    neg = sorted(NEGATIVE, key=lambda t: _order_key("negative", t))
    rows: list[dict[str, str]] = []
    for index, (p_text, n_text) in enumerate(zip(pos, neg, strict=True)):
        pair = [
            {"text": p_text, "label": "positive"},
            {"text": n_text, "label": "negative"},
        ]
        if int(_order_key("pair", str(index))[0], 16) % 2:
            pair.reverse()
        rows.extend(pair)
    return rows


def write_demo_dataset(directory: str | Path) -> Path:
    """Write the demo dataset into ``directory`` and return the path of the CSV file.

    Two files are written: ``reviews.csv`` (UTF-8, header ``text,label``, quoted by the
    :mod:`csv` module wherever needed) and ``description.txt`` containing
    :data:`DESCRIPTION`. The directory is created if it does not exist; existing files of
    the same names are overwritten.
    """
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / CSV_FILENAME
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(demo_rows())
    (out_dir / DESCRIPTION_FILENAME).write_text(DESCRIPTION + "\n", encoding="utf-8")
    return csv_path
