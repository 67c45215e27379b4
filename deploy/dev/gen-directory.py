#!/usr/bin/env python3
"""Generates the synthetic location directory of the dev stack (docs/contract/canonical-event.md).

    deploy/dev/gen-directory.py [--count N] [--seed S] [--out FILE]
    deploy/dev/gen-directory.py --check FILE

Writes a CSV with the header
    location_id,provider_id,name,local_authority_code,region,service_type
(RFC 4180 quoting) in the shape of the regulator's public care directory:

- about N locations (default 3000): ~95% CQC locations (ids 1- and 9 to 11 digits)
  and ~5% NHS trust sites (5-character ODS site codes: trust code + 2 digits; their
  provider_id is the trust's ODS code);
- spread over the real GSS codes of England's upper-tier local authorities (E06
  unitary, E08 metropolitan, E09 London borough, E10 county), each in one of the
  regulator's 9 regions, in rough proportion to population;
- synthetic but realistic names (some with commas and apostrophes).

Five local areas deliberately have no location at all, so that a LOCAL_AREA event
for them is enriched with region UNKNOWN (docs/contract/canonical-event.md):
    E09000001 City of London      E06000053 Isles of Scilly     E06000017 Rutland
    E08000023 South Tyneside      E06000039 Slough
Three rows are always present (the contract's examples, used by deploy/dev/data/samples/):
    1-101669119 Rose Court, Care Home (E08000025)   1-10000792582 Oak Lodge (E06000060)
    RXQ02 Stoke Mandeville Hospital (E06000060)

Deterministic: the same --count and --seed give a byte-identical file. Standard
library only. --check FILE applies the identifier rules of docs/contract/formats.md (and the
directory loader's region rule) to every row of FILE and exits 1 on any failure.
"""
import argparse
import csv
import io
import os
import random
import re
import sys

# ---------------------------------------------------------------------------- data

REGIONS = ["North East", "North West", "Yorkshire and The Humber", "East Midlands",
           "West Midlands", "East of England", "London", "South East", "South West"]

NE, NW, YH, EM, WM, EE, LDN, SE, SW = REGIONS

# Upper-tier local authorities: GSS code, name, region, population (thousands),
# towns used in location names (default: the area's name).
AREAS = [
    ("E06000001", "Hartlepool", NE, 92, ""),
    ("E06000002", "Middlesbrough", NE, 143, ""),
    ("E06000003", "Redcar and Cleveland", NE, 136, "Redcar|Guisborough|Saltburn"),
    ("E06000004", "Stockton-on-Tees", NE, 196, "Stockton|Thornaby|Billingham"),
    ("E06000005", "Darlington", NE, 107, ""),
    ("E06000047", "County Durham", NE, 522, "Durham|Bishop Auckland|Chester-le-Street|Consett"),
    ("E06000057", "Northumberland", NE, 320, "Hexham|Morpeth|Blyth|Alnwick"),
    ("E08000021", "Newcastle upon Tyne", NE, 300, "Newcastle|Gosforth|Jesmond"),
    ("E08000022", "North Tyneside", NE, 209, "North Shields|Wallsend|Whitley Bay"),
    ("E08000023", "South Tyneside", NE, 147, "South Shields|Jarrow"),
    ("E08000024", "Sunderland", NE, 274, "Sunderland|Washington|Houghton-le-Spring"),
    ("E08000037", "Gateshead", NE, 196, ""),
    ("E06000006", "Halton", NW, 128, "Runcorn|Widnes"),
    ("E06000007", "Warrington", NW, 210, ""),
    ("E06000008", "Blackburn with Darwen", NW, 154, "Blackburn|Darwen"),
    ("E06000009", "Blackpool", NW, 141, ""),
    ("E06000049", "Cheshire East", NW, 398, "Crewe|Macclesfield|Congleton|Nantwich"),
    ("E06000050", "Cheshire West and Chester", NW, 357, "Chester|Northwich|Ellesmere Port"),
    ("E06000063", "Cumberland", NW, 273, "Carlisle|Workington|Whitehaven"),
    ("E06000064", "Westmorland and Furness", NW, 225, "Kendal|Barrow-in-Furness|Penrith"),
    ("E08000001", "Bolton", NW, 296, ""),
    ("E08000002", "Bury", NW, 193, "Bury|Ramsbottom|Prestwich"),
    ("E08000003", "Manchester", NW, 552, "Manchester|Wythenshawe|Didsbury|Moss Side"),
    ("E08000004", "Oldham", NW, 242, ""),
    ("E08000005", "Rochdale", NW, 223, "Rochdale|Middleton|Heywood"),
    ("E08000006", "Salford", NW, 270, "Salford|Eccles|Swinton"),
    ("E08000007", "Stockport", NW, 294, "Stockport|Bramhall|Cheadle"),
    ("E08000008", "Tameside", NW, 231, "Ashton-under-Lyne|Hyde|Stalybridge"),
    ("E08000009", "Trafford", NW, 235, "Altrincham|Sale|Stretford"),
    ("E08000010", "Wigan", NW, 329, "Wigan|Leigh|Atherton"),
    ("E08000011", "Knowsley", NW, 154, "Huyton|Kirkby|Prescot"),
    ("E08000012", "Liverpool", NW, 486, "Liverpool|Walton|Garston|Everton"),
    ("E08000013", "St. Helens", NW, 183, "St Helens|Newton-le-Willows"),
    ("E08000014", "Sefton", NW, 279, "Southport|Bootle|Crosby"),
    ("E08000015", "Wirral", NW, 320, "Birkenhead|Wallasey|Heswall"),
    ("E10000017", "Lancashire", NW, 1235, "Preston|Lancaster|Burnley|Chorley|Morecambe"),
    ("E06000010", "Kingston upon Hull, City of", YH, 267, "Hull"),
    ("E06000011", "East Riding of Yorkshire", YH, 342, "Beverley|Bridlington|Goole"),
    ("E06000012", "North East Lincolnshire", YH, 156, "Grimsby|Cleethorpes"),
    ("E06000013", "North Lincolnshire", YH, 169, "Scunthorpe|Brigg"),
    ("E06000014", "York", YH, 202, ""),
    ("E06000065", "North Yorkshire", YH, 615, "Harrogate|Scarborough|Northallerton|Skipton|Selby"),
    ("E08000016", "Barnsley", YH, 244, ""),
    ("E08000017", "Doncaster", YH, 308, ""),
    ("E08000018", "Rotherham", YH, 265, ""),
    ("E08000019", "Sheffield", YH, 556, "Sheffield|Hillsborough|Crookes"),
    ("E08000032", "Bradford", YH, 546, "Bradford|Keighley|Shipley|Ilkley"),
    ("E08000033", "Calderdale", YH, 206, "Halifax|Brighouse|Todmorden"),
    ("E08000034", "Kirklees", YH, 433, "Huddersfield|Dewsbury|Batley"),
    ("E08000035", "Leeds", YH, 812, "Leeds|Headingley|Morley|Otley"),
    ("E08000036", "Wakefield", YH, 353, "Wakefield|Pontefract|Castleford"),
    ("E06000015", "Derby", EM, 261, ""),
    ("E06000016", "Leicester", EM, 368, ""),
    ("E06000017", "Rutland", EM, 41, "Oakham|Uppingham"),
    ("E06000018", "Nottingham", EM, 323, ""),
    ("E06000061", "North Northamptonshire", EM, 359, "Kettering|Corby|Wellingborough"),
    ("E06000062", "West Northamptonshire", EM, 425, "Northampton|Daventry|Towcester"),
    ("E10000007", "Derbyshire", EM, 794, "Chesterfield|Matlock|Buxton|Ilkeston"),
    ("E10000018", "Leicestershire", EM, 712, "Loughborough|Hinckley|Market Harborough|Coalville"),
    ("E10000019", "Lincolnshire", EM, 768, "Lincoln|Boston|Grantham|Skegness"),
    ("E10000024", "Nottinghamshire", EM, 824, "Mansfield|Newark|Worksop|Beeston"),
    ("E06000019", "Herefordshire, County of", WM, 187, "Hereford|Leominster|Ross-on-Wye"),
    ("E06000020", "Telford and Wrekin", WM, 185, "Telford|Wellington|Newport"),
    ("E06000021", "Stoke-on-Trent", WM, 258, "Stoke|Hanley|Longton|Burslem"),
    ("E06000051", "Shropshire", WM, 323, "Shrewsbury|Oswestry|Ludlow"),
    ("E08000025", "Birmingham", WM, 1144, "Birmingham|Edgbaston|Erdington|Moseley|Selly Oak"),
    ("E08000026", "Coventry", WM, 345, ""),
    ("E08000027", "Dudley", WM, 323, "Dudley|Stourbridge|Halesowen"),
    ("E08000028", "Sandwell", WM, 341, "West Bromwich|Smethwick|Oldbury"),
    ("E08000029", "Solihull", WM, 216, "Solihull|Shirley|Chelmsley Wood"),
    ("E08000030", "Walsall", WM, 284, "Walsall|Bloxwich|Aldridge"),
    ("E08000031", "Wolverhampton", WM, 264, ""),
    ("E10000028", "Staffordshire", WM, 876, "Stafford|Lichfield|Tamworth|Burton upon Trent"),
    ("E10000031", "Warwickshire", WM, 596, "Warwick|Nuneaton|Rugby|Stratford-upon-Avon"),
    ("E10000034", "Worcestershire", WM, 603, "Worcester|Redditch|Kidderminster|Malvern"),
    ("E06000031", "Peterborough", EE, 215, ""),
    ("E06000032", "Luton", EE, 225, ""),
    ("E06000033", "Southend-on-Sea", EE, 180, "Southend|Leigh-on-Sea|Shoeburyness"),
    ("E06000034", "Thurrock", EE, 176, "Grays|Tilbury|Purfleet"),
    ("E06000055", "Bedford", EE, 185, ""),
    ("E06000056", "Central Bedfordshire", EE, 294, "Dunstable|Leighton Buzzard|Biggleswade"),
    ("E10000003", "Cambridgeshire", EE, 678, "Cambridge|Ely|Huntingdon|Wisbech"),
    ("E10000012", "Essex", EE, 1503, "Chelmsford|Colchester|Basildon|Harlow|Clacton-on-Sea"),
    ("E10000015", "Hertfordshire", EE, 1198, "St Albans|Watford|Stevenage|Hemel Hempstead"),
    ("E10000020", "Norfolk", EE, 916, "Norwich|King's Lynn|Great Yarmouth|Thetford"),
    ("E10000029", "Suffolk", EE, 760, "Ipswich|Bury St Edmunds|Lowestoft|Sudbury"),
    ("E09000001", "City of London", LDN, 9, ""),
    ("E09000002", "Barking and Dagenham", LDN, 218, "Barking|Dagenham"),
    ("E09000003", "Barnet", LDN, 389, "Barnet|Finchley|Edgware"),
    ("E09000004", "Bexley", LDN, 246, "Bexleyheath|Sidcup|Erith"),
    ("E09000005", "Brent", LDN, 339, "Wembley|Willesden|Kilburn"),
    ("E09000006", "Bromley", LDN, 330, "Bromley|Orpington|Beckenham"),
    ("E09000007", "Camden", LDN, 210, "Camden|Hampstead|Kentish Town"),
    ("E09000008", "Croydon", LDN, 390, "Croydon|Purley|Thornton Heath"),
    ("E09000009", "Ealing", LDN, 367, "Ealing|Southall|Acton"),
    ("E09000010", "Enfield", LDN, 330, "Enfield|Edmonton|Southgate"),
    ("E09000011", "Greenwich", LDN, 289, "Greenwich|Woolwich|Eltham"),
    ("E09000012", "Hackney", LDN, 259, "Hackney|Dalston|Stoke Newington"),
    ("E09000013", "Hammersmith and Fulham", LDN, 183, "Hammersmith|Fulham"),
    ("E09000014", "Haringey", LDN, 264, "Tottenham|Hornsey|Wood Green"),
    ("E09000015", "Harrow", LDN, 261, "Harrow|Pinner|Stanmore"),
    ("E09000016", "Havering", LDN, 262, "Romford|Hornchurch|Upminster"),
    ("E09000017", "Hillingdon", LDN, 305, "Uxbridge|Hayes|Ruislip"),
    ("E09000018", "Hounslow", LDN, 288, "Hounslow|Chiswick|Feltham"),
    ("E09000019", "Islington", LDN, 216, "Islington|Highbury|Archway"),
    ("E09000020", "Kensington and Chelsea", LDN, 143, "Kensington|Chelsea|Notting Hill"),
    ("E09000021", "Kingston upon Thames", LDN, 168, "Kingston|Surbiton"),
    ("E09000022", "Lambeth", LDN, 317, "Brixton|Streatham|Clapham"),
    ("E09000023", "Lewisham", LDN, 300, "Lewisham|Catford|Deptford"),
    ("E09000024", "Merton", LDN, 215, "Wimbledon|Mitcham|Morden"),
    ("E09000025", "Newham", LDN, 351, "Stratford|East Ham|Canning Town"),
    ("E09000026", "Redbridge", LDN, 310, "Ilford|Woodford|Wanstead"),
    ("E09000027", "Richmond upon Thames", LDN, 195, "Richmond|Twickenham|Teddington"),
    ("E09000028", "Southwark", LDN, 307, "Peckham|Bermondsey|Camberwell"),
    ("E09000029", "Sutton", LDN, 209, "Sutton|Carshalton|Cheam"),
    ("E09000030", "Tower Hamlets", LDN, 310, "Bethnal Green|Poplar|Bow|Whitechapel"),
    ("E09000031", "Waltham Forest", LDN, 278, "Walthamstow|Leyton|Chingford"),
    ("E09000032", "Wandsworth", LDN, 327, "Wandsworth|Tooting|Putney|Balham"),
    ("E09000033", "Westminster", LDN, 204, "Marylebone|Pimlico|Paddington"),
    ("E06000035", "Medway", SE, 279, "Chatham|Gillingham|Rochester"),
    ("E06000036", "Bracknell Forest", SE, 124, "Bracknell|Crowthorne|Sandhurst"),
    ("E06000037", "West Berkshire", SE, 161, "Newbury|Thatcham|Hungerford"),
    ("E06000038", "Reading", SE, 174, ""),
    ("E06000039", "Slough", SE, 158, ""),
    ("E06000040", "Windsor and Maidenhead", SE, 153, "Windsor|Maidenhead|Ascot"),
    ("E06000041", "Wokingham", SE, 177, "Wokingham|Woodley|Earley"),
    ("E06000042", "Milton Keynes", SE, 287, "Milton Keynes|Bletchley|Newport Pagnell"),
    ("E06000043", "Brighton and Hove", SE, 277, "Brighton|Hove|Portslade"),
    ("E06000044", "Portsmouth", SE, 208, "Portsmouth|Southsea|Cosham"),
    ("E06000045", "Southampton", SE, 249, "Southampton|Shirley|Woolston"),
    ("E06000046", "Isle of Wight", SE, 140, "Newport|Ryde|Sandown|Cowes"),
    ("E06000060", "Buckinghamshire", SE, 553, "Aylesbury|High Wycombe|Amersham|Buckingham"),
    ("E10000011", "East Sussex", SE, 545, "Eastbourne|Hastings|Lewes|Bexhill-on-Sea"),
    ("E10000014", "Hampshire", SE, 1400, "Winchester|Basingstoke|Andover|Fareham|Aldershot"),
    ("E10000016", "Kent", SE, 1576, "Maidstone|Canterbury|Ashford|Dover|Margate|Tunbridge Wells"),
    ("E10000025", "Oxfordshire", SE, 725, "Oxford|Banbury|Abingdon|Witney"),
    ("E10000030", "Surrey", SE, 1203, "Guildford|Woking|Epsom|Redhill|Farnham"),
    ("E10000032", "West Sussex", SE, 882, "Chichester|Worthing|Crawley|Horsham"),
    ("E06000022", "Bath and North East Somerset", SW, 193, "Bath|Keynsham|Midsomer Norton"),
    ("E06000023", "Bristol, City of", SW, 472, "Bristol|Southmead|Bedminster|Fishponds"),
    ("E06000024", "North Somerset", SW, 216, "Weston-super-Mare|Clevedon|Portishead"),
    ("E06000025", "South Gloucestershire", SW, 290, "Yate|Thornbury|Filton"),
    ("E06000026", "Plymouth", SW, 264, "Plymouth|Plympton|Devonport"),
    ("E06000027", "Torbay", SW, 139, "Torquay|Paignton|Brixham"),
    ("E06000030", "Swindon", SW, 233, ""),
    ("E06000052", "Cornwall", SW, 570, "Truro|Penzance|Bodmin|St Austell|Falmouth"),
    ("E06000053", "Isles of Scilly", SW, 2, "St Mary's"),
    ("E06000054", "Wiltshire", SW, 510, "Salisbury|Chippenham|Trowbridge|Devizes"),
    ("E06000058", "Bournemouth, Christchurch and Poole", SW, 400, "Bournemouth|Christchurch|Poole"),
    ("E06000059", "Dorset", SW, 379, "Dorchester|Weymouth|Bridport|Wimborne"),
    ("E06000066", "Somerset", SW, 571, "Taunton|Yeovil|Bridgwater|Frome"),
    ("E10000008", "Devon", SW, 811, "Exeter|Barnstaple|Newton Abbot|Exmouth|Tiverton"),
    ("E10000013", "Gloucestershire", SW, 645, "Gloucester|Cheltenham|Stroud|Tewkesbury"),
]

# Local areas left without any location (LOCAL_AREA events there get region UNKNOWN).
EMPTY_AREAS = ["E09000001", "E06000053", "E06000017", "E08000023", "E06000039"]

# Rows always present, whatever the seed (the contract's examples; used by data/samples/).
PINNED = [
    ("1-101669119", "1-100000001", "Rose Court, Care Home", "E08000025", WM, "Care home"),
    ("1-10000792582", "1-100000002", "Oak Lodge", "E06000060", SE, "Care home"),
    ("RXQ02", "RXQ", "Stoke Mandeville Hospital", "E06000060", SE, "Acute hospital"),
]

# CQC (non-trust) service types: share of locations, and the share of new locations
# that belong to an existing provider (a chain or group) rather than a new one.
SERVICE_TYPES = [
    # service_type,              share, chain
    ("Care home", 24, 0.45),
    ("Care home with nursing", 12, 0.55),
    ("Domiciliary care", 19, 0.20),
    ("Supported living", 5, 0.40),
    ("GP practice", 16, 0.05),
    ("Dental practice", 14, 0.30),
    ("Community mental health", 4, 0.50),
    ("Hospice", 2, 0.05),
    ("Independent hospital", 4, 0.50),
]

# NHS trust kinds: share of trusts, sites per trust, the service type of the main site
# and those of the others.
TRUST_KINDS = [
    ("acute", 70, (2, 5), "Acute hospital",
     ["Community hospital", "Community hospital", "Acute hospital"]),
    ("mental health", 20, (2, 6), "Mental health hospital", ["Mental health hospital"]),
    ("community", 10, (2, 4), "Community hospital", ["Community hospital"]),
]

PRETTY = ["Rose", "Oak", "Willow", "Beech", "Elm", "Ash", "Birch", "Cedar", "Maple",
          "Laurel", "Holly", "Ivy", "Meadow", "Orchard", "Riverside", "Hillside", "Brook",
          "Fern", "Heather", "Primrose", "Bluebell", "Lavender", "Foxglove", "Larch",
          "Rowan", "Hazel", "Cherry Tree", "Chestnut", "Sycamore", "Poplar", "Yew Tree",
          "Abbey", "Priory", "Manor", "Park", "Church View", "Lakeside", "Woodlands",
          "Greenacres", "Fairview", "Southlands", "Westfield", "Ashgrove", "Kingfisher",
          "Swallows", "Magnolia", "Juniper", "Mulberry", "Hawthorn", "Elmfield",
          "St Anne's", "St Mary's", "St George's", "St Michael's", "St John's",
          "Bishop's", "Queen's", "King's", "Miller's", "Shepherd's"]
BUILDINGS = ["House", "Lodge", "Court", "Manor", "Grange", "Hall", "View", "Gardens",
             "Place", "Mews", "Villa", "Cottage"]
STREETS = ["High Street", "Church Road", "Station Road", "Park Lane", "Mill Lane",
           "Victoria Road", "Queen's Road", "King Street", "London Road", "Manor Road",
           "Grove Road", "Market Street", "Bridge Street", "Green Lane", "Chapel Street",
           "North Road", "Albert Road", "Castle Street", "Abbey Road", "New Road",
           "St John's Road", "Cross Street", "Orchard Way", "Springfield Road"]
SURNAMES = ["Patel", "Shah", "Khan", "Smith", "Jones", "Williams", "Brown", "Taylor",
            "Ahmed", "Hussain", "Singh", "Okafor", "O'Brien", "Murphy", "Evans", "Thomas",
            "Roberts", "Walker", "Wright", "Green", "Hall", "Wood", "Clarke", "Hughes",
            "Edwards", "Lewis", "Chen", "Nguyen", "Kowalski", "Adeyemi", "D'Souza", "Begum",
            "Mensah", "O'Neill", "MacLeod", "Rahman", "Kaur", "Iqbal", "Novak", "Fraser"]
SAINTS = ["Luke's", "Catherine's", "Barnabas'", "Clare's", "Helena's", "Peter's",
          "Margaret's", "Andrew's", "Wilfrid's", "Richard's"]

# Name templates per service type. {p} pretty stem, {b} building, {t} town, {s} street,
# {n} {m} surnames, {x} saint.
NAMES = {
    "Care home": ["{p} {b}", "{p} {b}", "The {p} {b}", "{p} {b} Care Home",
                  "{p} {b}, Care Home", "{p} {b} Residential Home", "{p} House, {t}",
                  "{p} Court Care Centre"],
    "Care home with nursing": ["{p} {b} Nursing Home", "{p} {b} Care Centre",
                               "{p} Nursing Home, {t}", "{p} {b}, Nursing and Dementia Care",
                               "The {p} Care Home with Nursing"],
    "Domiciliary care": ["{t} Home Care", "{p} Home Care Services Ltd",
                         "Caring Hands ({t})", "{t} Community Care Services",
                         "Comfort at Home, {t}", "{p} Care at Home - {t}",
                         "{n} Homecare Ltd", "{t} Reablement Service"],
    "Supported living": ["{p} Supported Living", "{s} Supported Living Service",
                         "{p} {b}, Supported Living", "{t} Supported Living Network"],
    "GP practice": ["{s} Surgery", "{t} Medical Centre", "The {s} Practice",
                    "Dr {n} and Partners", "Drs {n}, {m} and Partners",
                    "{s} Health Centre", "{p} Medical Practice", "{t} Family Practice"],
    "Dental practice": ["{t} Dental Practice", "{s} Dental Care", "{n} & {m} Dental Surgery",
                        "{p} Dental Clinic", "{t} Smile Centre", "{s} Dental Practice, {t}"],
    "Community mental health": ["{t} Community Mental Health Team",
                                "{t} Recovery House", "{p} Crisis House",
                                "{t} Early Intervention in Psychosis Service"],
    "Hospice": ["St {x} Hospice", "{t} Hospice", "{p} Hospice, {t}"],
    "Independent hospital": ["The {p} Hospital", "{t} Clinic", "{p} Park Hospital",
                             "{p} Hospital, {t}", "The {t} Independent Hospital"],
    "Acute hospital": ["{t} General Hospital", "{t} Royal Infirmary",
                       "Royal {t} Hospital", "{t} District General Hospital",
                       "{t} University Hospital"],
    "Community hospital": ["{t} Community Hospital", "{t} Memorial Hospital",
                           "{t} Women's and Children's Hospital", "{t} Treatment Centre",
                           "{p} Day Surgery Unit, {t}"],
    "Mental health hospital": ["{p} Unit, {t}", "{t} Mental Health Unit",
                               "{p} {b} Psychiatric Unit", "{p} Centre",
                               "{t} Child and Adolescent Unit"],
}

HEADER = ["location_id", "provider_id", "name", "local_authority_code", "region",
          "service_type"]

# docs/contract/formats.md and the directory loader's rules, for --check.
LOCATION_RE = re.compile(r"^1-[0-9]{9,11}$|^[A-Z0-9]{5}$")
GSS_RE = re.compile(r"^E(0[6-9]|10)[0-9]{6}$")
REGION_RE = re.compile(r"^[A-Za-z \-&',.]{1,64}$")


# ---------------------------------------------------------------------------- generator

class Ids:
    """Unique random CQC-style ids."""

    def __init__(self, rng, taken):
        self.rng, self.taken = rng, set(taken)

    def _fresh(self, make):
        while True:
            s = make()
            if s not in self.taken:
                self.taken.add(s)
                return s

    def location(self):
        r = self.rng
        pick = r.random()
        if pick < 0.55:    # 1-1xxxxxxxx: 9 digits (older registrations)
            return self._fresh(lambda: "1-1%08d" % r.randrange(10 ** 8))
        if pick < 0.70:    # 10 digits
            return self._fresh(lambda: "1-%d%09d" % (r.randint(1, 4), r.randrange(10 ** 9)))
        return self._fresh(lambda: "1-1000%07d" % r.randrange(10 ** 7))  # 11 digits

    def provider(self):
        return self._fresh(lambda: "1-1%08d" % self.rng.randrange(10 ** 8))


def towns_of(area):
    return area[4].split("|") if area[4] else [area[1]]


def make_name(rng, service_type, town):
    template = rng.choice(NAMES[service_type])
    n, m = rng.sample(SURNAMES, 2)
    return template.format(p=rng.choice(PRETTY), b=rng.choice(BUILDINGS), t=town,
                           s=rng.choice(STREETS), n=n, m=m, x=rng.choice(SAINTS))


def generate(count, seed):
    rng = random.Random(seed)
    areas = [a for a in AREAS if a[0] not in EMPTY_AREAS]
    weights = [a[3] for a in areas]
    rows = list(PINNED)
    ids = Ids(rng, [r[0] for r in PINNED] + [r[1] for r in PINNED])
    taken_names = {(r[2], r[3]) for r in rows}

    def unique_name(service_type, area, town):
        for _ in range(20):
            name = make_name(rng, service_type, town)
            if (name, area[0]) not in taken_names:
                break
        taken_names.add((name, area[0]))
        return name

    # NHS trust sites (~5%): trusts in populous areas, sites numbered 01, 02, ...
    n_sites = max(1, round(count * 0.05)) - 1  # RXQ02 is pinned
    trust_codes = [c for c in ("R%s%s" % (a, b) for a in "ABCDEFGHJKLMNPQRTVWXY"
                               for b in "0123456789ABCDEFGHJKLMNPQRTVWXY") if c != "RXQ"]
    trust_codes = rng.sample(trust_codes, len(trust_codes))
    while n_sites > 0:
        code = trust_codes.pop()
        kind = rng.choices(TRUST_KINDS, [k[1] for k in TRUST_KINDS])[0]
        area = rng.choices(areas, [w * w for w in weights])[0]  # big places have trusts
        towns = towns_of(area)
        n = min(n_sites, rng.randint(*kind[2]))
        for i in range(n):
            stype = kind[3] if i == 0 else rng.choice(kind[4])
            town = towns[0] if i == 0 else rng.choice(towns)
            rows.append(("%s%02d" % (code, i + 1), code, unique_name(stype, area, town),
                         area[0], area[2], stype))
        n_sites -= n

    # CQC locations: every area gets at least one, the rest by population.
    n_cqc = max(0, count - len(rows))
    area_of = [areas[i] for i in range(min(n_cqc, len(areas)))]
    area_of += rng.choices(areas, weights, k=n_cqc - len(area_of))
    chains = {s[0]: [] for s in SERVICE_TYPES}
    for area in area_of:
        stype, _, chain = rng.choices(SERVICE_TYPES, [s[1] for s in SERVICE_TYPES])[0]
        if chains[stype] and rng.random() < chain:
            provider = rng.choice(chains[stype])
        else:
            provider = ids.provider()
            chains[stype].append(provider)
        town = rng.choice(towns_of(area))
        rows.append((ids.location(), provider, unique_name(stype, area, town), area[0],
                     area[2], stype))
    rows.sort(key=lambda r: r[0])
    return rows


def to_csv(rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    return buf.getvalue()


def check(path):
    """Applies docs/contract/formats.md's identifier rules (and the region rule) to every row."""
    errors, ids, areas = 0, set(), set()
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != HEADER:
            print("%s: line 1: expected the header %s" % (path, ",".join(HEADER)))
            return 1
        for lineno, row in enumerate(reader, start=2):
            problems = []
            if len(row) != len(HEADER):
                problems.append("expected %d fields, got %d" % (len(HEADER), len(row)))
            else:
                loc, _, name, la, region, stype = row
                if not LOCATION_RE.match(loc):
                    problems.append("bad location_id %r" % loc)
                if loc in ids:
                    problems.append("location_id %s listed twice" % loc)
                if not GSS_RE.match(la):
                    problems.append("bad local_authority_code %r" % la)
                if not REGION_RE.match(region):
                    problems.append("bad region %r" % region)
                if not name or "\n" in name or "\r" in name:
                    problems.append("bad name")
                ids.add(loc)
                areas.add(la)
            for p in problems:
                print("%s: line %d: %s" % (path, lineno, p))
            errors += len(problems)
    print("%s: %d locations, %d local areas, %d errors" % (path, len(ids), len(areas),
                                                           errors))
    return 1 if errors else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(
        description="Generate the synthetic location directory (docs/contract/canonical-event.md). "
                    "Local areas without any location (for LOCAL_AREA events with "
                    "region UNKNOWN): " + ", ".join(EMPTY_AREAS) + ".")
    ap.add_argument("--count", type=int, default=3000, help="number of locations [3000]")
    ap.add_argument("--seed", type=int, default=1, help="random seed [1]")
    ap.add_argument("--out", default=os.path.join(here, "data", "directory.csv"),
                    help="output file ['-' for stdout; default deploy/dev/data/directory.csv]")
    ap.add_argument("--check", metavar="FILE",
                    help="validate FILE's rows against docs/contract/formats.md and exit")
    args = ap.parse_args()
    if args.check:
        return check(args.check)
    if args.count < len(PINNED):
        ap.error("--count must be at least %d" % len(PINNED))
    text = to_csv(generate(args.count, args.seed))
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    print("gen-directory: wrote %d locations to %s" % (text.count("\n") - 1, args.out),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
